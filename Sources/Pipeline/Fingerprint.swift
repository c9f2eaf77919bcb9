// Stage fingerprints and the explanation of why a stage is stale. A fingerprint is the SHA-256 of
// a canonical JSON "basis": kind, artifact version, the kind's code identity (a build-time digest
// of the sources of its module and everything it links), normalised parameters, and per input
// either the upstream stage's fingerprint or the content hash of the file/directory. It depends on
// configuration and input content only (not on upstream outputs), so the whole pipeline's
// fingerprints are known before anything runs.
import Foundation
import StageAPI

public struct StageFingerprint: Sendable {
    public let stage: String
    /// 64 hex digits.
    public let full: String
    /// The artifact folder name: the first 16 hex digits.
    public var id: String { String(full.prefix(16)) }
    /// Input name → per reference: the JSON recorded in manifest.json.
    public let inputRecords: [String: [JSONValue]]
    /// Path input digests, for inputs-index.tsv.
    public let pathDigests: [(input: String, path: String, digest: InputDigest)]
}

/// Computes every stage's fingerprint, in topological order.
public func computeFingerprints(_ spec: PipelineSpec, hasher: ContentHasher) throws -> [String: StageFingerprint] {
    var result: [String: StageFingerprint] = [:]
    for name in spec.order {
        let stage = spec.stages[name]!
        var basisInputs: [(String, JSONValue)] = []
        var records: [String: [JSONValue]] = [:]
        var digests: [(String, String, InputDigest)] = []
        for input in stage.inputs.keys.sorted() {
            var basis: [JSONValue] = []
            var recs: [JSONValue] = []
            for ref in stage.inputs[input]! {
                switch ref {
                case let .stage(up):
                    let fp = result[up]!.full
                    basis.append(["stage": .string(up), "fingerprint": .string(fp)])
                    recs.append(["stage": .string(up), "fingerprint": .string(fp)])
                case let .path(p):
                    let digest: InputDigest
                    do { digest = try hasher.digest(of: spec.resolve(path: p)) } catch let e as PipelineError {
                        throw PipelineError.invalid(file: spec.file.path, path: "stages.\(name).inputs.\(input)", message: "\(e)")
                    }
                    // The path itself is not hashed: moving a dataset does not invalidate results.
                    basis.append(["content": .string(digest.hash)])
                    recs.append(["path": .string(p), "hash": .string(digest.hash), "files": .int(digest.files.count)])
                    digests.append((input, p, digest))
                }
            }
            basisInputs.append((input, .array(basis)))
            records[input] = recs
        }
        var basis: JSONValue = [
            "kind": .string(stage.kind.name),
            "artifactVersion": .int(stage.kind.artifactVersion),
            "params": stage.parameters.json,
            "inputs": .object(basisInputs),
        ]
        if let code = stage.codeIdentity, case let .object(fields) = basis {
            basis = .object(fields + [("code", .string(code.digest))])
        }
        result[name] = StageFingerprint(stage: name, full: SHA256.hash(basis.canonicalString),
                                        inputRecords: records, pathDigests: digests)
    }
    return result
}

// MARK: - inputs-index.tsv

func inputIndexText(_ fp: StageFingerprint) -> String {
    var out = "input\tpath\tfile\tsize\tsha256\n"
    for (input, path, digest) in fp.pathDigests {
        for f in digest.files {
            out += "\(input)\t\(path)\t\(f.relativePath)\t\(f.size)\t\(f.hash)\n"
        }
    }
    return out
}

/// (input, path) → relative file → hash, as recorded with an artifact.
func readInputIndex(_ url: URL) -> [String: [String: String]] {
    guard let text = try? String(contentsOf: url, encoding: .utf8) else { return [:] }
    var out: [String: [String: String]] = [:]
    for line in text.split(separator: "\n").dropFirst() {
        let f = line.split(separator: "\t", omittingEmptySubsequences: false)
        guard f.count == 5 else { continue }
        out["\(f[0])\t\(f[1])", default: [:]][String(f[2])] = String(f[4])
    }
    return out
}

// MARK: - Why is a stage stale?

/// Human-readable differences between the stored version `latest` and the stage as configured now.
func staleReasons(stage: StageSpec, fingerprint: StageFingerprint, latest: Manifest, latestDirectory: URL,
                  upstreamStates: [String: StageState]) -> [String]
{
    var reasons: [String] = []
    if latest.kind != stage.kind.name {
        reasons.append("kind changed: '\(latest.kind)' → '\(stage.kind.name)'")
    } else if latest.artifactVersion != stage.kind.artifactVersion {
        reasons.append("artifact format of kind '\(stage.kind.name)' changed: version \(latest.artifactVersion) → \(stage.kind.artifactVersion)")
    }
    if let code = stage.codeIdentity, latest.codeDigest != code.digest {
        reasons.append("code changed: module \(code.module) or a module it links differs from the build that made "
            + "\(latest.fingerprint.prefix(16)) (code \(latest.codeDigest.map { String($0.prefix(12)) } ?? "not recorded") → \(code.digest.prefix(12)))")
    }
    let old = Dictionary(latest.params, uniquingKeysWith: { a, _ in a })
    let new = stage.parameters.values
    for key in Set(old.keys).union(new.keys).sorted() {
        switch (old[key], new[key]) {
        case let (o?, n?) where o != n: reasons.append("params.\(key): \(o.canonicalString) → \(n.canonicalString)")
        case let (nil, n?): reasons.append("params.\(key): new parameter (= \(n.canonicalString))")
        case (_?, nil): reasons.append("params.\(key): parameter removed")
        default: break
        }
    }
    let oldInputs = Dictionary(latest.inputs, uniquingKeysWith: { a, _ in a })
    var oldIndex: [String: [String: String]]?
    for input in Set(oldInputs.keys).union(fingerprint.inputRecords.keys).sorted() {
        let was = oldInputs[input]?.arrayValue ?? []
        guard let now = fingerprint.inputRecords[input] else { reasons.append("inputs.\(input): input removed"); continue }
        if oldInputs[input] == nil { reasons.append("inputs.\(input): new input"); continue }
        if was.count != now.count { reasons.append("inputs.\(input): \(was.count) → \(now.count) references"); continue }
        for (o, n) in zip(was, now) where o != n {
            if let up = n["stage"]?.stringValue {
                if o["stage"]?.stringValue != up {
                    reasons.append("inputs.\(input): now reads stage '\(up)' (was \(o["stage"]?.stringValue.map { "'\($0)'" } ?? o.canonicalString))")
                } else {
                    let state = upstreamStates[up].map { " (it is \($0.word))" } ?? ""
                    reasons.append("inputs.\(input): upstream stage '\(up)' changed\(state)")
                }
            } else if let path = n["path"]?.stringValue {
                if o["path"]?.stringValue != path, o["hash"] == n["hash"] {
                    continue  // moved, same content: not a reason (and not a fingerprint change)
                }
                if oldIndex == nil { oldIndex = readInputIndex(latestDirectory.appendingPathComponent(ArtifactStore.indexName)) }
                let before = oldIndex?["\(input)\t\(o["path"]?.stringValue ?? "")"] ?? [:]
                let digest = fingerprint.pathDigests.first { $0.input == input && $0.path == path }?.digest
                reasons.append("inputs.\(input) (\(path)): " + describeContentChange(before: before, after: digest))
            }
        }
    }
    if reasons.isEmpty { reasons.append("fingerprint differs from the latest version \(latest.fingerprint.prefix(16))") }
    return reasons
}

private func describeContentChange(before: [String: String], after: InputDigest?) -> String {
    guard let after, !before.isEmpty else { return "content changed" }
    let now = Dictionary(after.files.map { ($0.relativePath, $0.hash) }, uniquingKeysWith: { a, _ in a })
    let changed = now.filter { before[$0.key] != nil && before[$0.key] != $0.value }.map(\.key).sorted()
    let added = now.keys.filter { before[$0] == nil }.sorted()
    let removed = before.keys.filter { now[$0] == nil }.sorted()
    func list(_ names: [String], _ verb: String) -> String? {
        guard !names.isEmpty else { return nil }
        let shown = names.prefix(3).map { $0.isEmpty ? "(the file)" : $0 }.joined(separator: ", ")
        let more = names.count > 3 ? ", …" : ""
        return "\(names.count) file\(names.count == 1 ? "" : "s") \(verb) (\(shown)\(more))"
    }
    let parts = [list(changed, "changed"), list(added, "added"), list(removed, "removed")].compactMap { $0 }
    return parts.isEmpty ? "content changed" : parts.joined(separator: ", ")
}
