/// The OpenAPI 3.1 description of `/api/v1`, served at `GET /api/v1/openapi.yaml`. The tests
/// check it with a real validator (openapi-spec-validator) and fuzz a live server from it
/// (schemathesis, in `hack/test.sh`): keep it in step with `APIRoutes`.
enum OpenAPIDocument {
    static let yaml = #"""
    openapi: 3.1.0
    info:
      title: Setpoint API
      version: v1
      description: >-
        Runs dstack-style services. Every endpoint except healthz, openapi.yaml and code needs
        the header "Authorization: Bearer <token>"; a missing or unknown token is a 401, a token
        without a role in the project a 403.
    servers:
      - url: /api/v1
    security:
      - bearer: []
    components:
      securitySchemes:
        bearer:
          type: http
          scheme: bearer
      parameters:
        project:
          name: project
          in: path
          required: true
          schema:
            type: string
        name:
          name: name
          in: path
          required: true
          schema:
            type: string
      schemas:
        Error:
          type: object
          required: [error]
          properties:
            error:
              type: object
              required: [code, message]
              properties:
                code:
                  type: string
                  enum: [invalid, bad_request, unauthenticated, forbidden, not_found, conflict, unavailable, internal]
                message:
                  type: string
                issues:
                  type: array
                  items:
                    type: object
                    properties:
                      path:
                        type: string
                      line:
                        type: [integer, "null"]
                      column:
                        type: [integer, "null"]
                      message:
                        type: string
        ApplyRequest:
          type: object
          required: [configuration]
          properties:
            configuration:
              type: string
              description: The .dstack.yml text (at most 256 KiB).
            file:
              type: string
              description: The file it came from, for messages.
            env:
              type: object
              additionalProperties:
                type: string
              description: Values for env names without a value, and overrides.
            name:
              type: string
              description: Overrides the configuration's name.
            resourceVersion:
              type: integer
              minimum: 1
              description: Apply only if the run is still at this version (from a plan).
            force:
              type: boolean
            code:
              type: string
              description: Base64 of a gzipped tar of the code to run.
        SetDocument:
          type: object
          required: [file, configuration]
          properties:
            file:
              type: string
            configuration:
              type: string
              description: One .dstack.yml document.
            code:
              type: string
              description: The SHA-256 of one of `archives`, the code the service runs in.
        SetRequest:
          type: object
          required: [documents]
          properties:
            set:
              type: string
              description: The set's name (its objects carry it; prune deletes the set's objects no longer listed).
            documents:
              type: array
              items:
                $ref: '#/components/schemas/SetDocument'
            archives:
              type: object
              additionalProperties:
                type: string
              description: Code archives (base64 gzipped tar) by SHA-256.
            env:
              type: object
              additionalProperties:
                type: string
            prune:
              type: boolean
            force:
              type: boolean
            expected:
              type: object
              additionalProperties:
                type: integer
              description: From the plan, `Kind/name` → version (0 for absent); apply answers 409 when any moved.
        SetEntry:
          type: object
          properties:
            kind:
              type: string
              enum: [Run, Gateway]
            name:
              type: string
            file:
              type: [string, "null"]
            action:
              type: string
              enum: [create, update, unchanged, delete]
            diff:
              type: array
              items:
                type: string
            changes:
              type: [object, "null"]
            resourceVersion:
              type: [integer, "null"]
            note:
              type: [string, "null"]
        SetPlan:
          type: object
          properties:
            project:
              type: string
            user:
              type: string
            set:
              type: [string, "null"]
            prune:
              type: boolean
            entries:
              type: array
              items:
                $ref: '#/components/schemas/SetEntry'
        SetResult:
          type: object
          properties:
            plan:
              $ref: '#/components/schemas/SetPlan'
            runs:
              type: array
              items:
                $ref: '#/components/schemas/Run'
            gateways:
              type: array
              items:
                $ref: '#/components/schemas/Gateway'
        SecretRequest:
          type: object
          required: [value]
          properties:
            value:
              type: string
              description: At most 64 KiB; never returned.
        SecretInfo:
          type: object
          properties:
            name:
              type: string
            createdAt:
              type: string
              format: date-time
            updatedAt:
              type: string
              format: date-time
            updatedBy:
              type: [string, "null"]
            usedBy:
              type: array
              items:
                type: string
        SourceRequest:
          type: object
          required: [name, spec]
          properties:
            name:
              type: string
            spec:
              type: object
              required: [url, ref, interval, prune, selfHeal, suspend, cascade, syncRequest]
              description: url, ref ({branch} | {tag} | {commit}), path, interval (seconds), prune, selfHeal, suspend, tokenSecret, username, sshKeySecret, knownHosts, webhookSecret.
        Source:
          type: object
          properties:
            project:
              type: string
            name:
              type: string
            generation:
              type: integer
            resourceVersion:
              type: integer
            createdAt:
              type: string
              format: date-time
            deleting:
              type: boolean
            spec:
              type: object
            status:
              type: object
              description: lastAttempted, lastApplied, lastAppliedAt, error, objects (kind, name, file, sync, health, message), message, conditions (Ready, Reconciling, Stalled), observedGeneration.
            webhookPath:
              type: [string, "null"]
        WebhookOutcome:
          type: object
          properties:
            accepted:
              type: boolean
            message:
              type: string
        Offer:
          type: object
          properties:
            backend:
              type: string
            region:
              type: string
            instance:
              type: string
            cpus:
              type: integer
            memoryGB:
              type: number
            diskGB:
              type: number
            gpus:
              type: array
              items:
                type: string
            spot:
              type: boolean
            price:
              type: number
            arch:
              type: [string, "null"]
        Run:
          type: object
          properties:
            project:
              type: string
            name:
              type: string
            uid:
              type: string
            generation:
              type: integer
            resourceVersion:
              type: integer
            createdAt:
              type: string
              format: date-time
            deleting:
              type: boolean
            configuration:
              type: object
              description: The normalized configuration (docs/configuration.md), secrets redacted.
            desiredReplicas:
              type: [object, "null"]
              additionalProperties:
                type: integer
            stopRequested:
              type: boolean
            status:
              type: object
              description: phase, terminationReason, message, observedGeneration, deploymentNum, desiredReplicas, readyReplicas, runningReplicas, conditions.
            url:
              type: string
            modelURL:
              type: [string, "null"]
        Plan:
          type: object
          properties:
            action:
              type: string
              enum: [create, update, none]
            project:
              type: string
            user:
              type: string
            runName:
              type: string
            configuration:
              type: object
            changes:
              type: object
              properties:
                inPlace:
                  type: array
                  items:
                    type: string
                rolling:
                  type: array
                  items:
                    type: string
                recreate:
                  type: array
                  items:
                    type: string
            offers:
              type: array
              items:
                $ref: '#/components/schemas/Offer'
            offersNote:
              type: [string, "null"]
              description: Set when no offer holds the resources.
            resourceVersion:
              type: [integer, "null"]
            current:
              oneOf:
                - $ref: '#/components/schemas/Run'
                - type: "null"
        Replica:
          type: object
          properties:
            name:
              type: string
            group:
              type: string
            replicaNum:
              type: integer
            submissionNum:
              type: integer
            deploymentNum:
              type: integer
            terminationRequested:
              type: boolean
            status:
              type: object
              description: phase, terminationReason, message, exitStatus, ready, endpoint, startedAt, finishedAt.
            run:
              type: string
              description: The run it belongs to.
            createdAt:
              type: string
              format: date-time
            resourceVersion:
              type: integer
        ProjectEvent:
          type: object
          description: An event as the project's event list and the watch show it; a repeat on the same object raises count and lastTimestamp.
          properties:
            name:
              type: string
            resourceVersion:
              type: integer
            kind:
              type: string
              description: The object's kind (Run, Replica, ProxyRoute, Gateway, Source).
            object:
              type: string
            type:
              type: string
              enum: [Normal, Warning]
            reason:
              type: string
            message:
              type: string
            count:
              type: integer
            firstTimestamp:
              type: string
              format: date-time
            lastTimestamp:
              type: string
              format: date-time
            component:
              type: [string, "null"]
              description: The controller that recorded it.
            run:
              type: [string, "null"]
              description: The run it is about (the run's own events, its replicas' and its route's).
        Event:
          type: object
          properties:
            involved:
              type: object
            type:
              type: string
              enum: [Normal, Warning]
            reason:
              type: string
            message:
              type: string
            count:
              type: integer
            firstTimestamp:
              type: string
            lastTimestamp:
              type: string
        StopRequest:
          type: object
          properties:
            abort:
              type: boolean
        UserRequest:
          type: object
          required: [name, projects]
          properties:
            name:
              type: string
            globalRole:
              type: string
              enum: [admin, user]
            projects:
              type: object
              description: Project name to role (admin, manager or user); every project must exist.
              additionalProperties:
                type: string
                enum: [admin, manager, user]
        ServerList:
          type: object
          required: [store, servers]
          properties:
            store:
              type: string
              enum: [sqlite, postgres]
            leader:
              type: [string, "null"]
            leaseDurationSeconds:
              type: [integer, "null"]
            servers:
              type: array
              items:
                type: object
                required: [name, address, role, startedAt, version]
                properties:
                  name:
                    type: string
                  address:
                    type: string
                  role:
                    type: string
                    enum: [leader, follower, gone]
                  startedAt:
                    type: string
                    format: date-time
                  leaderSince:
                    type: [string, "null"]
                    format: date-time
                  heartbeat:
                    type: [string, "null"]
                    format: date-time
                  version:
                    type: string
        UserInfo:
          type: object
          properties:
            name:
              type: string
            globalRole:
              type: string
            projects:
              type: object
              additionalProperties:
                type: string
            token:
              type: [string, "null"]
              description: Only in the answer to a creation, shown once.
        ProjectRequest:
          type: object
          required: [name]
          properties:
            name:
              type: string
            description:
              type: string
        ProjectInfo:
          type: object
          properties:
            name:
              type: string
            description:
              type: string
        WatchEvent:
          type: object
          description: >-
            One change: the object under the field of its kind. Without a resourceVersion the stream starts with
            every object (added) and a bookmark; resume from the last bookmark or change. A bookmark carries only
            the position; expired means list again (watch without a version).
          properties:
            type:
              type: string
              enum: [added, modified, deleted, bookmark, expired]
            kind:
              type: string
              enum: ["", Run, Replica, Gateway, Source, Event]
            name:
              type: string
            resourceVersion:
              type: integer
            run:
              $ref: '#/components/schemas/Run'
            replica:
              $ref: '#/components/schemas/Replica'
            gateway:
              $ref: '#/components/schemas/Gateway'
            source:
              $ref: '#/components/schemas/Source'
            event:
              $ref: '#/components/schemas/ProjectEvent'
        LogLine:
          type: object
          properties:
            replica:
              type: string
            text:
              type: string
            error:
              type: string
              description: Set when this replica's output could not be read.
        Gateway:
          type: object
          properties:
            project:
              type: string
            name:
              type: string
            uid:
              type: string
            generation:
              type: integer
            resourceVersion:
              type: integer
            createdAt:
              type: string
              format: date-time
            deleting:
              type: boolean
            isDefault:
              type: boolean
              description: The project's default gateway (services without `gateway:` use it).
            configuration:
              type: object
              description: The normalized gateway configuration.
            status:
              type: object
              description: phase, address, httpPort, domain, desiredReplicas, readyReplicas, replicas, certificates, message, conditions, observedGeneration.
            serviceURLPattern:
              type: [string, "null"]
            modelURL:
              type: [string, "null"]
        GatewayPlan:
          type: object
          properties:
            action:
              type: string
              enum: [create, update, replace, none]
            project:
              type: string
            name:
              type: string
            configuration:
              type: object
            changes:
              type: array
              items:
                type: string
            resourceVersion:
              type: [integer, "null"]
            current:
              oneOf:
                - $ref: '#/components/schemas/Gateway'
                - type: "null"
        GatewayFeedMessage:
          type: object
          properties:
            type:
              type: string
              enum: [snapshot, keepalive]
            snapshot:
              type: object
              description: project, gateway, domain, readTimeout, routes, tokenHashes (SHA-256 of the tokens that may reach the project), version.
        GatewayReport:
          type: object
          required: [replica, services]
          properties:
            replica:
              type: integer
            services:
              type: array
              items:
                type: object
            waiting:
              type: array
              items:
                type: string
      responses:
        BadRequest:
          description: The request is wrong; the message names the field.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
        Unauthenticated:
          description: No token, or an unknown one.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
        Forbidden:
          description: The token has no role that allows this.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
        NotFound:
          description: No such project, run or archive.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
        Conflict:
          description: The object changed since it was read, or already exists.
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
        Unavailable:
          description: The server cannot use its store or disk (full, read-only).
          content:
            application/json:
              schema:
                $ref: '#/components/schemas/Error'
    paths:
      /healthz:
        get:
          security: []
          responses:
            '200':
              description: The server is up.
              content:
                text/plain:
                  schema:
                    type: string
      /openapi.yaml:
        get:
          security: []
          responses:
            '200':
              description: This document.
              content:
                application/yaml:
                  schema:
                    type: string
      /code/{sha256}:
        get:
          security: []
          description: A stored code archive by its SHA-256 (the hash is the capability), for Pods that fetch their code.
          parameters:
            - name: sha256
              in: path
              required: true
              schema:
                type: string
          responses:
            '200':
              description: The gzipped tar.
              content:
                application/gzip:
                  schema:
                    type: string
                    contentMediaType: application/gzip
            '404':
              description: No such archive.
              content:
                text/plain:
                  schema:
                    type: string
      /offers:
        get:
          responses:
            '200':
              description: What the backends offer.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Offer'
            '401':
              $ref: '#/components/responses/Unauthenticated'
      /servers:
        get:
          description: The installation's servers, which one leads (runs the controllers) and since when.
          responses:
            '200':
              description: The servers.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ServerList'
            '401':
              $ref: '#/components/responses/Unauthenticated'
      /users:
        get:
          description: Users and their roles (global admins only).
          responses:
            '200':
              description: The users (without tokens).
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/UserInfo'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
        post:
          description: Creates a user and returns its token once (global admins only).
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/UserRequest'
          responses:
            '200':
              description: The user, with its token.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/UserInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '409':
              $ref: '#/components/responses/Conflict'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects:
        get:
          description: The projects the caller has a role in.
          responses:
            '200':
              description: The projects.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/ProjectInfo'
            '401':
              $ref: '#/components/responses/Unauthenticated'
        post:
          description: Creates a project (global admins only).
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/ProjectRequest'
          responses:
            '200':
              description: The project.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/ProjectInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '409':
              $ref: '#/components/responses/Conflict'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/runs/plan:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/ApplyRequest'
          responses:
            '200':
              description: What apply would do.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Plan'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/runs/apply:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/ApplyRequest'
          responses:
            '200':
              description: The run.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Run'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '409':
              $ref: '#/components/responses/Conflict'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/runs:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
          responses:
            '200':
              description: The project's runs.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Run'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/runs/{name}:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The run.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Run'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
        delete:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The run, marked for deletion (its workloads are cleaned up first).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Run'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/runs/{name}/stop:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          requestBody:
            description: Empty for a graceful stop.
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/StopRequest'
          responses:
            '200':
              description: The run, stopping.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Run'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/runs/{name}/replicas:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The run's replicas.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Replica'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/runs/{name}/events:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: Events of the run and its replicas, oldest first.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Event'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/runs/{name}/logs:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
            - name: replica
              in: query
              description: Only this replica number (every submission of it), or only the replica of this name.
              schema:
                type: string
            - name: follow
              in: query
              description: Keep the stream open for new output (1, true or yes).
              schema:
                type: string
          responses:
            '200':
              description: NDJSON LogLine objects, every replica's (or one's).
              content:
                application/x-ndjson:
                  schema:
                    $ref: '#/components/schemas/LogLine'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/events:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - name: for
              in: query
              description: "KIND/NAME: run/NAME (with its replicas and route), replica/NAME, route/NAME, gateway/NAME, source/NAME."
              schema:
                type: string
            - name: since
              in: query
              description: Only events seen in this window (30s, 10m, 2h, 1d) or since an RFC 3339 time.
              schema:
                type: string
          responses:
            '200':
              description: The project's events, oldest first (by last time seen).
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/ProjectEvent'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/replicas:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
          responses:
            '200':
              description: Every replica of the project, by run and name.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Replica'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /projects/{project}/watch:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - name: resourceVersion
              in: query
              description: Resume after this version (a bookmark's or the last change's); absent means the current state first, then a bookmark.
              schema:
                type: integer
                minimum: 0
            - name: kind
              in: query
              description: Only these kinds, comma-separated (run, replica, gateway, source, event); all when absent.
              schema:
                type: string
          responses:
            '200':
              description: NDJSON WatchEvent objects as the project's runs, replicas, gateways, sources and events change.
              content:
                application/x-ndjson:
                  schema:
                    $ref: '#/components/schemas/WatchEvent'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
      /users/{name}:
        delete:
          parameters:
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The deleted user; their token stops working at once.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/UserInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/gateways/plan:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/ApplyRequest'
          responses:
            '200':
              description: What apply would do to the gateway (create, update in place, replace, or none).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/GatewayPlan'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/gateways/apply:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/ApplyRequest'
          responses:
            '200':
              description: The gateway, created or updated.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Gateway'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/gateways:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
          responses:
            '200':
              description: The project's gateways.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Gateway'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/gateways/{name}:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The gateway.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Gateway'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
        delete:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The gateway, being deleted.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Gateway'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/gateways/{name}/events:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The gateway's events.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Event'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/sets/plan:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/SetRequest'
          responses:
            '200':
              description: What applying the configurations as one unit would do (create, update with its diff, unchanged, delete).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SetPlan'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/sets/apply:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/SetRequest'
          responses:
            '200':
              description: What was applied (nothing unless every configuration was valid).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SetResult'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/secrets:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
          responses:
            '200':
              description: The project's secrets (names only).
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/SecretInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/secrets/{name}:
        put:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/SecretRequest'
          responses:
            '200':
              description: The secret, set (its value is never returned).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SecretInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
        delete:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The secret, deleted.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/SecretInfo'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/sources/apply:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/SourceRequest'
          responses:
            '200':
              description: The source, created or changed.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/sources:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
          responses:
            '200':
              description: The project's sources.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/sources/{name}:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: 'The source: revisions, objects'' sync and health, conditions.'
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
        delete:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
            - name: cascade
              in: query
              required: false
              schema:
                type: string
                enum: ['true', 'false']
              description: Delete the runs and gateways it applied too (else they stay).
          responses:
            '200':
              description: The source, being deleted.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/sources/{name}/events:
        get:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The source's events.
              content:
                application/json:
                  schema:
                    type: array
                    items:
                      $ref: '#/components/schemas/Event'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
      /projects/{project}/sources/{name}/sync:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The source. Fetch now and apply what the repository says.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/sources/{name}/suspend:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The source. Neither fetch nor apply.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/sources/{name}/resume:
        post:
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          responses:
            '200':
              description: The source. Fetch and apply again.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/Source'
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
            '403':
              $ref: '#/components/responses/Forbidden'
            '404':
              $ref: '#/components/responses/NotFound'
            '503':
              $ref: '#/components/responses/Unavailable'
            '409':
              $ref: '#/components/responses/Conflict'
      /projects/{project}/sources/{name}/webhook:
        post:
          description: A push from GitHub (X-Hub-Signature-256), Gitea (X-Gitea-Signature) or GitLab (X-Gitlab-Token), checked with the source's webhook secret; no bearer token.
          security: []
          parameters:
            - $ref: '#/components/parameters/project'
            - $ref: '#/components/parameters/name'
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  type: object
          responses:
            '200':
              description: A ping, answered.
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/WebhookOutcome'
            '202':
              description: Accepted (the source fetches now) or ignored (another branch, not a push).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/WebhookOutcome'
            '401':
              description: The signature or token does not match (or the source has no webhook).
              content:
                application/json:
                  schema:
                    $ref: '#/components/schemas/WebhookOutcome'
      /gateway/feed:
        get:
          description: For gateway processes (a gateway credential, not a user token).
          responses:
            '200':
              description: NDJSON GatewayFeedMessage lines, a snapshot on connect and after every change, keepalives every 10 s.
              content:
                application/x-ndjson:
                  schema:
                    $ref: '#/components/schemas/GatewayFeedMessage'
            '401':
              $ref: '#/components/responses/Unauthenticated'
      /gateway/report:
        post:
          description: For gateway processes (a gateway credential, not a user token).
          requestBody:
            required: true
            content:
              application/json:
                schema:
                  $ref: '#/components/schemas/GatewayReport'
          responses:
            '200':
              description: Recorded.
              content:
                application/json:
                  schema:
                    type: object
                    properties:
                      ok:
                        type: boolean
            '400':
              $ref: '#/components/responses/BadRequest'
            '401':
              $ref: '#/components/responses/Unauthenticated'
    """#
}
