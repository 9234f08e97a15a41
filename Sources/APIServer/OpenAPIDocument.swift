/// The OpenAPI description of `/api/v1`, served at `GET /api/v1/openapi.yaml`.
enum OpenAPIDocument {
    static let yaml = #"""
    openapi: 3.0.3
    info:
      title: Setpoint API
      version: v1
      description: Runs dstack-style services. Every endpoint except healthz and openapi.yaml needs `Authorization: Bearer <token>`.
    servers:
      - url: /api/v1
    components:
      securitySchemes:
        bearer: {type: http, scheme: bearer}
      parameters:
        project: {name: project, in: path, required: true, schema: {type: string}}
        name: {name: name, in: path, required: true, schema: {type: string}}
      schemas:
        Error:
          type: object
          properties:
            error:
              type: object
              required: [code, message]
              properties:
                code: {type: string, enum: [invalid, bad_request, unauthenticated, forbidden, not_found, conflict, internal]}
                message: {type: string}
                issues:
                  type: array
                  items:
                    type: object
                    properties:
                      path: {type: string}
                      line: {type: integer}
                      column: {type: integer}
                      message: {type: string}
        ApplyRequest:
          type: object
          required: [configuration, env, force]
          properties:
            configuration: {type: string, description: the .dstack.yml text}
            file: {type: string}
            env: {type: object, additionalProperties: {type: string}, description: values for env names without a value, and overrides}
            name: {type: string, description: overrides the configuration's name}
            resourceVersion: {type: integer, description: apply only if the run is still at this version}
            force: {type: boolean}
        Plan:
          type: object
          properties:
            action: {type: string, enum: [create, update, none]}
            project: {type: string}
            user: {type: string}
            runName: {type: string}
            configuration: {type: object, description: normalized configuration (docs/configuration.md), secrets redacted}
            changes:
              type: object
              properties:
                inPlace: {type: array, items: {type: string}}
                rolling: {type: array, items: {type: string}}
                recreate: {type: array, items: {type: string}}
            offers: {type: array, items: {$ref: '#/components/schemas/Offer'}}
            resourceVersion: {type: integer}
            current: {$ref: '#/components/schemas/Run'}
        Offer:
          type: object
          properties:
            backend: {type: string}
            region: {type: string}
            instance: {type: string}
            cpus: {type: integer}
            memoryGB: {type: number}
            diskGB: {type: number}
            gpus: {type: array, items: {type: string}}
            spot: {type: boolean}
            price: {type: number}
        Run:
          type: object
          properties:
            project: {type: string}
            name: {type: string}
            uid: {type: string}
            generation: {type: integer}
            resourceVersion: {type: integer}
            createdAt: {type: string, format: date-time}
            deleting: {type: boolean}
            configuration: {type: object}
            desiredReplicas: {type: object, additionalProperties: {type: integer}}
            stopRequested: {type: boolean}
            status: {type: object, description: phase, terminationReason, message, observedGeneration, deploymentNum, desiredReplicas, readyReplicas, runningReplicas, conditions}
            url: {type: string}
            modelURL: {type: string}
        Replica:
          type: object
          properties:
            name: {type: string}
            group: {type: string}
            replicaNum: {type: integer}
            submissionNum: {type: integer}
            deploymentNum: {type: integer}
            terminationRequested: {type: boolean}
            status: {type: object, description: phase, terminationReason, message, exitStatus, ready, endpoint, startedAt, finishedAt}
        WatchEvent:
          type: object
          properties:
            type: {type: string, enum: [added, modified, deleted, expired]}
            kind: {type: string, enum: [Run, Replica]}
            name: {type: string}
            resourceVersion: {type: integer}
            run: {$ref: '#/components/schemas/Run'}
            replica: {$ref: '#/components/schemas/Replica'}
      responses:
        Error:
          description: error
          content: {application/json: {schema: {$ref: '#/components/schemas/Error'}}}
    security:
      - bearer: []
    paths:
      /healthz:
        get: {security: [], responses: {'200': {description: ok}}}
      /openapi.yaml:
        get: {security: [], responses: {'200': {description: this document}}}
      /code/{sha256}:
        get:
          security: []
          description: A stored code archive by its SHA-256 (the hash is the capability), for Pods that fetch their code.
          parameters: [{name: sha256, in: path, required: true, schema: {type: string}}]
          responses:
            '200': {description: the gzipped tar, content: {application/gzip: {}}}
            '404': {description: no such archive}
      /offers:
        get:
          responses:
            '200': {description: offers, content: {application/json: {schema: {type: array, items: {$ref: '#/components/schemas/Offer'}}}}}
            '401': {$ref: '#/components/responses/Error'}
      /projects/{project}/runs/plan:
        post:
          parameters: [{$ref: '#/components/parameters/project'}]
          requestBody: {required: true, content: {application/json: {schema: {$ref: '#/components/schemas/ApplyRequest'}}}}
          responses:
            '200': {description: plan, content: {application/json: {schema: {$ref: '#/components/schemas/Plan'}}}}
            '400': {$ref: '#/components/responses/Error'}
            '401': {$ref: '#/components/responses/Error'}
            '403': {$ref: '#/components/responses/Error'}
      /projects/{project}/runs/apply:
        post:
          parameters: [{$ref: '#/components/parameters/project'}]
          requestBody: {required: true, content: {application/json: {schema: {$ref: '#/components/schemas/ApplyRequest'}}}}
          responses:
            '200': {description: the run, content: {application/json: {schema: {$ref: '#/components/schemas/Run'}}}}
            '400': {$ref: '#/components/responses/Error'}
            '409': {$ref: '#/components/responses/Error'}
      /projects/{project}/runs:
        get:
          parameters: [{$ref: '#/components/parameters/project'}]
          responses:
            '200': {description: runs, content: {application/json: {schema: {type: array, items: {$ref: '#/components/schemas/Run'}}}}}
      /projects/{project}/runs/{name}:
        get:
          parameters: [{$ref: '#/components/parameters/project'}, {$ref: '#/components/parameters/name'}]
          responses:
            '200': {description: run, content: {application/json: {schema: {$ref: '#/components/schemas/Run'}}}}
            '404': {$ref: '#/components/responses/Error'}
        delete:
          parameters: [{$ref: '#/components/parameters/project'}, {$ref: '#/components/parameters/name'}]
          responses:
            '200': {description: the run, marked for deletion, content: {application/json: {schema: {$ref: '#/components/schemas/Run'}}}}
      /projects/{project}/runs/{name}/stop:
        post:
          parameters: [{$ref: '#/components/parameters/project'}, {$ref: '#/components/parameters/name'}]
          requestBody: {content: {application/json: {schema: {type: object, properties: {abort: {type: boolean}}}}}}
          responses:
            '200': {description: run, content: {application/json: {schema: {$ref: '#/components/schemas/Run'}}}}
      /projects/{project}/runs/{name}/replicas:
        get:
          parameters: [{$ref: '#/components/parameters/project'}, {$ref: '#/components/parameters/name'}]
          responses:
            '200': {description: replicas, content: {application/json: {schema: {type: array, items: {$ref: '#/components/schemas/Replica'}}}}}
      /projects/{project}/runs/{name}/events:
        get:
          parameters: [{$ref: '#/components/parameters/project'}, {$ref: '#/components/parameters/name'}]
          responses:
            '200': {description: events of the run and its replicas, content: {application/json: {schema: {type: array, items: {type: object}}}}}
      /projects/{project}/runs/{name}/logs:
        get:
          parameters:
            - {$ref: '#/components/parameters/project'}
            - {$ref: '#/components/parameters/name'}
            - {name: replica, in: query, schema: {type: integer}}
            - {name: follow, in: query, schema: {type: boolean}}
          responses:
            '200': {description: log lines as NDJSON {replica, text}, content: {application/x-ndjson: {schema: {type: string}}}}
      /projects/{project}/watch:
        get:
          parameters:
            - {$ref: '#/components/parameters/project'}
            - {name: resourceVersion, in: query, schema: {type: integer}, description: resume after this version; absent = current state first}
          responses:
            '200': {description: changes as NDJSON WatchEvent lines; an `expired` event means list again, content: {application/x-ndjson: {schema: {$ref: '#/components/schemas/WatchEvent'}}}}
    """#
}
