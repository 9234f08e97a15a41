import Crypto
import Foundation
import Hummingbird
import HTTPTypes
import NIOCore

/// The status page at `/ui/` (docs/web.md): a static page and a small script, compiled into the
/// binary, that sign in with a token and draw everything from the watch API. `/` leads there.
/// The files are served with a strict Content-Security-Policy (only this origin's script and
/// style, no inline code, no frames) and an ETag.
public enum WebUI {
    struct Asset: Sendable {
        var body: [UInt8]
        var contentType: String
        var etag: String

        init(_ body: [UInt8], _ contentType: String) {
            self.body = body
            self.contentType = contentType
            self.etag = "\"" + SHA256.hash(data: body).prefix(12).map { String(format: "%02x", $0) }.joined() + "\""
        }
    }

    static let assets: [String: Asset] = [
        "": Asset(PackageResources.index_html, "text/html; charset=utf-8"),
        "app.js": Asset(PackageResources.app_js, "text/javascript; charset=utf-8"),
        "app.css": Asset(PackageResources.app_css, "text/css; charset=utf-8"),
        "icon.svg": Asset(PackageResources.icon_svg, "image/svg+xml"),
    ]

    static let securityHeaders: HTTPFields = [
        .contentSecurityPolicy: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
            + "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        HTTPField.Name("X-Content-Type-Options")!: "nosniff",
        HTTPField.Name("Referrer-Policy")!: "no-referrer",
        .cacheControl: "no-cache",
    ]

    public static func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in Response(status: .found, headers: [.location: "/ui/"]) }
        router.get("ui") { request, _ in serve("", request) }   // `/ui` and `/ui/`
        router.get("ui/:file") { request, context in serve(context.parameters.get("file") ?? "", request) }
    }

    static func serve(_ name: String, _ request: Request) -> Response {
        guard let asset = assets[name] else {
            return Response(status: .notFound, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "no such file: /ui/\(name)\n")))
        }
        var headers = securityHeaders
        headers[.eTag] = asset.etag
        if request.headers[.ifNoneMatch] == asset.etag { return Response(status: .notModified, headers: headers) }
        headers[.contentType] = asset.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: asset.body)))
    }
}
