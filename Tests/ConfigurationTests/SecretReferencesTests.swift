import Testing
@testable import SetpointConfiguration

/// `${{ secrets.NAME }}` with dstack's interpolation rules.
@Suite struct SecretReferencesTests {
    typealias P = SecretReferences.Part

    @Test(arguments: [
        ("plain", [P.literal("plain")]),
        ("${{ secrets.TOKEN }}", [P.secret("TOKEN")]),
        ("${{secrets.TOKEN}}", [P.secret("TOKEN")]),
        ("Bearer ${{ secrets.T_1 }}!", [P.literal("Bearer "), P.secret("T_1"), P.literal("!")]),
        ("$${{ secrets.TOKEN }}", [P.literal("${{ secrets.TOKEN }}")]),
        ("cost: $5 ${HOME} $", [P.literal("cost: $5 ${HOME} $")]),
        ("${{ secrets.A }}${{ secrets.B }}", [P.secret("A"), P.secret("B")]),
    ])
    func parses(_ text: String, _ parts: [P]) throws {
        #expect(try SecretReferences.parse(text) == parts)
    }

    @Test(arguments: [
        ("${{ secrets.TOKEN", "without a closing"),
        ("${{ TOKEN }}", "is not a reference"),
        ("${{ secrets.1A }}", "is not a reference"),
        ("${{ secrets.a.b }}", "is not a reference"),
        ("${{ env.HOME }}", "only refer to `secrets.NAME`, not `env`"),
    ])
    func rejects(_ text: String, _ fragment: String) {
        #expect(throws: SecretReferences.Problem.self) { try SecretReferences.parse(text) }
        do { _ = try SecretReferences.parse(text) } catch { #expect(error.message.contains(fragment), "\(error.message)") }
    }

    @Test func rendersAndFindsEveryUse() throws {
        let parts = try SecretReferences.parse("u=${{ secrets.U }}, p=${{ secrets.P }}, u=${{ secrets.U }}")
        #expect(SecretReferences.render(parts, ["U": "alice", "P": "pw"]) == "u=alice, p=pw, u=alice")
        #expect(try SecretReferences.names(in: "${{ secrets.U }}${{ secrets.P }}${{ secrets.U }}") == ["U", "P"])
        #expect(SecretReferences.isValidName("HF_TOKEN") && SecretReferences.isValidName("_x1"))
        #expect(!SecretReferences.isValidName("1x") && !SecretReferences.isValidName("a-b") && !SecretReferences.isValidName(""))
    }

    @Test func configurationReferencesNameTheirProperty() throws {
        let docs = ConfigurationParser.parse("""
            type: service
            port: 8000
            image: ghcr.io/org/app
            env:
              - TOKEN=${{ secrets.HF_TOKEN }}
              - BAD=${{ vars.X }}
              - PLAIN=1
            registry_auth:
              username: ${{ secrets.REG_USER }}
              password: ${{ secrets.REG_PASS }}
            """)
        guard case .success(.service(let config)) = docs[0].result else { Issue.record("invalid"); return }
        let refs = config.secretReferences
        #expect(refs.uses.map { "\($0.property)=\($0.secret)" } == ["env.TOKEN=HF_TOKEN", "registry_auth.username=REG_USER", "registry_auth.password=REG_PASS"])
        #expect(refs.problems.map(\.property) == ["env.BAD"])
    }
}
