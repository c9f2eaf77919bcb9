// The versioned artifact store under outputs/:
//   outputs/<stage>/<id>/            one version (id = first 16 hex digits of the fingerprint),
//       manifest.json                where it came from (written last: no manifest, no artifact)
//       inputs-index.tsv             the input files and their hashes (to explain staleness later)
//       log.txt                      the stage's log
//       timings.jsonl                wall-clock measurements of the kind, if it makes any
//                                    (StageContext.timingsFileName: train, refine seconds per epoch)
//       everything else              what the kind wrote: the same bytes for the same inputs,
//                                    parameters and code (manifest, log and timings record the run)
//   outputs/<stage>/latest           symlink to the current version, replaced atomically
//   outputs/<stage>/failed.json      the last failure at the current fingerprint, with failed.log
//   outputs/<stage>/.tmp-*           a version being built (removed at the next run if abandoned)
//   outputs/<stage>/.job-*.json      its worker's job and result files (StageWorker.swift)
//   outputs/.lock, outputs/.cache/   the runner lock and the content-hash cache
import Foundation
import StageAPI
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

public struct ArtifactStore: Sendable {
    public let root: URL

    public init(root: URL) { self.root = root.standardizedFileURL }

    public static let manifestName = "manifest.json"
    public static let logName = "log.txt"
    public static let indexName = "inputs-index.tsv"
    public static let timingsName = StageContext.timingsFileName
    /// The files of a version folder that record how the run went (times, durations, host) rather
    /// than what it computed: the only ones that may differ between two runs of the same stage.
    public static let runRecordNames: Set<String> = [manifestName, logName, timingsName]

    public func stageDirectory(_ stage: String) -> URL { root.appendingPathComponent(stage, isDirectory: true) }

    public func artifactDirectory(stage: String, id: String) -> URL {
        stageDirectory(stage).appendingPathComponent(id, isDirectory: true)
    }

    /// Whether a complete version exists (a version is complete once its manifest is in place).
    public func hasArtifact(stage: String, id: String) -> Bool {
        access(artifactDirectory(stage: stage, id: id).appendingPathComponent(Self.manifestName).path, F_OK) == 0
    }

    public func latestID(stage: String) -> String? {
        let link = stageDirectory(stage).appendingPathComponent("latest").path
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(link, &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0 ..< n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Points `latest` at a version: a new symlink under a temporary name renamed over the old one,
    /// so readers always see either the old or the new target.
    public func setLatest(stage: String, id: String) throws {
        let dir = stageDirectory(stage)
        let tmp = dir.appendingPathComponent(".latest.tmp-\(getpid())").path
        unlink(tmp)
        guard symlink(id, tmp) == 0 else { throw posixError("symlink", tmp) }
        let target = dir.appendingPathComponent("latest").path
        guard rename(tmp, target) == 0 else {
            let code = errno
            unlink(tmp)
            throw posixError("rename", target, code)
        }
    }

    public func manifest(stage: String, id: String) -> Manifest? {
        let url = artifactDirectory(stage: stage, id: id).appendingPathComponent(Self.manifestName)
        guard let data = try? Data(contentsOf: url), let json = try? JSONValue.parse(data) else { return nil }
        return Manifest(json: json)
    }

    /// Complete versions of a stage, newest first (by manifest end time, then id).
    public func versions(stage: String) -> [(id: String, manifest: Manifest)] {
        guard let names = try? directoryEntries(atPath: stageDirectory(stage).path) else { return [] }
        return names.filter { $0.count == 16 && $0.allSatisfy(\.isHexDigit) }
            .compactMap { id in manifest(stage: stage, id: id).map { (id, $0) } }
            .sorted { ($0.manifest.endTime, $0.id) > ($1.manifest.endTime, $1.id) }
    }

    /// Stage folders present under outputs/ (including stages no longer in the pipeline).
    public func storedStages() -> [String] {
        ((try? directoryEntries(atPath: root.path)) ?? []).filter {
            if case .directory = fileKind(atPath: root.appendingPathComponent($0).path) { return true }
            return false
        }
    }

    /// The process id of a live process building this version (its .tmp-<id>-<pid>-… folder).
    public func builder(stage: String, id: String) -> Int32? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: stageDirectory(stage).path) else { return nil }
        for name in names where name.hasPrefix(".tmp-\(id)-") {
            let parts = name.split(separator: "-")
            if parts.count >= 3, let pid = Int32(parts[2]), pid != getpid(), kill(pid, 0) == 0 || errno == EPERM { return pid }
        }
        return nil
    }

    /// Versions being built by runs that died, and temporaries of atomic writes inside artifacts
    /// (a killed stage's `.last.h5.tmp-<pid>-…`, `.band.h5.tmp-…`), sorted; what `gc` lists and
    /// removes. Call only while holding the lock (no runner is building anything then).
    public func abandonedTemporaries() -> [URL] {
        var out: [URL] = []
        for stage in storedStages() {
            let dir = stageDirectory(stage)
            guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir.path) else { continue }
            for name in entries.sorted() {
                if name.hasPrefix(".tmp-") || name.hasPrefix(".old-") || name.hasPrefix(".latest.tmp-") || name.hasPrefix(".job-") {
                    out.append(dir.appendingPathComponent(name))
                } else if !name.hasPrefix("."), name != "latest" {
                    // Inside a finished version: AtomicOutput temporaries of a dead process.
                    out += AtomicOutput.abandonedTemporaries(under: dir.appendingPathComponent(name), depth: 4)
                }
            }
        }
        return out
    }

    /// Removes what `abandonedTemporaries` lists; returns it.
    @discardableResult
    public func removeAbandonedTemporaries() -> [URL] {
        let doomed = abandonedTemporaries()
        for url in doomed { try? FileManager.default.removeItem(at: url) }
        return doomed
    }

    // MARK: Failures

    public struct Failure: Sendable {
        public let fingerprint: String
        public let error: String
        public let time: String
        public let log: URL
    }

    public func failure(stage: String) -> Failure? {
        let dir = stageDirectory(stage)
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("failed.json")),
              let json = try? JSONValue.parse(data),
              let fp = json["fingerprint"]?.stringValue else { return nil }
        return Failure(fingerprint: fp, error: json["error"]?.stringValue ?? "", time: json["time"]?.stringValue ?? "",
                       log: dir.appendingPathComponent("failed.log"))
    }

    func recordFailure(stage: String, fingerprint: String, error: String, time: String, log: URL?) throws {
        let dir = stageDirectory(stage)
        let logURL = dir.appendingPathComponent("failed.log")
        if let log {
            try? FileManager.default.removeItem(at: logURL)
            try? FileManager.default.moveItem(at: log, to: logURL)
        }
        let json: JSONValue = ["stage": .string(stage), "fingerprint": .string(fingerprint), "error": .string(error),
                               "time": .string(time), "log": "failed.log"]
        try AtomicOutput.write(Data(json.prettyString.utf8), to: dir.appendingPathComponent("failed.json"))
    }

    func clearFailure(stage: String) {
        let dir = stageDirectory(stage)
        unlink(dir.appendingPathComponent("failed.json").path)
        unlink(dir.appendingPathComponent("failed.log").path)
    }

    // MARK: Garbage collection

    public struct Removal: Sendable, Equatable {
        public let stage: String
        public let id: String
    }

    /// Versions `gc` would delete: all but the `keep` newest of each stage; the version `latest`
    /// points to is always kept and counts toward `keep`.
    public func collectable(keep: Int) -> [Removal] {
        var out: [Removal] = []
        for stage in storedStages() {
            let latest = latestID(stage: stage)
            var kept = latest.map { hasArtifact(stage: stage, id: $0) ? 1 : 0 } ?? 0
            for (id, _) in versions(stage: stage) where id != latest {
                if kept < keep { kept += 1 } else { out.append(Removal(stage: stage, id: id)) }
            }
        }
        return out
    }

    public func remove(_ removal: Removal) throws {
        // Rename first so a half-deleted version never looks complete.
        let dir = artifactDirectory(stage: removal.stage, id: removal.id)
        let doomed = stageDirectory(removal.stage).appendingPathComponent(".old-\(removal.id)-\(getpid())")
        guard rename(dir.path, doomed.path) == 0 else { throw posixError("rename", dir.path) }
        try FileManager.default.removeItem(at: doomed)
    }
}

/// manifest.json of one artifact version.
public struct Manifest: Sendable {
    public let json: JSONValue

    public init(json: JSONValue) { self.json = json }

    public var stage: String { json["stage"]?.stringValue ?? "" }
    public var kind: String { json["kind"]?.stringValue ?? "" }
    public var artifactVersion: Int { json["artifactVersion"]?.intValue ?? 0 }
    /// The code identity digest recorded at build time (nil in manifests written before it existed).
    public var codeDigest: String? { json["code"]?["digest"]?.stringValue }
    public var fingerprint: String { json["fingerprint"]?.stringValue ?? "" }
    public var params: [(String, JSONValue)] { json["params"]?.objectValue ?? [] }
    public var inputs: [(String, JSONValue)] { json["inputs"]?.objectValue ?? [] }
    public var metrics: JSONValue { json["metrics"] ?? .object([]) }
    public var startTime: String { json["startTime"]?.stringValue ?? "" }
    public var endTime: String { json["endTime"]?.stringValue ?? "" }
    public var durationSeconds: Double { json["durationSeconds"]?.doubleValue ?? 0 }
}

/// The outputs/.lock file lock: one runner (or gc) at a time per outputs/ folder. flock is released
/// by the kernel when the process dies, so a killed run never leaves a stale lock behind.
public final class OutputsLock {
    private var fd: Int32
    public let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    /// Takes the lock. When another process holds it: with `wait`, calls `onWait` with a message
    /// naming the holder and blocks until it is free; otherwise throws `PipelineError.lockBusy`.
    public static func acquire(outputs: URL, wait: Bool, onWait: (String) -> Void = { _ in }) throws -> OutputsLock {
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        let path = outputs.appendingPathComponent(".lock").path
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw posixError("open", path) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let code = errno
            guard code == EWOULDBLOCK || code == EAGAIN else {
                close(fd)
                throw posixError("flock", path, code)
            }
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            let who = holder.isEmpty ? "unknown process" : holder
            guard wait else {
                close(fd)
                throw PipelineError.lockBusy(path: path, holder: who)
            }
            onWait("waiting for another harmose process (\(who)) to release \(path)…")
            while flock(fd, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                let code = errno
                close(fd)
                throw posixError("flock", path, code)
            }
        }
        let info = "pid \(getpid()) on \(hostName()) since \(isoTimestamp(Date()))\n"
        ftruncate(fd, 0)
        _ = info.withCString { pwrite(fd, $0, strlen($0), 0) }
        return OutputsLock(fd: fd, path: path)
    }

    public func release() {
        guard fd >= 0 else { return }
        ftruncate(fd, 0)
        flock(fd, LOCK_UN)
        close(fd)
        fd = -1
    }

    deinit { release() }
}

func isoTimestamp(_ date: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    return f.string(from: date)
}

/// The machine's name from gethostname(2). (Foundation's ProcessInfo.hostName may resolve the
/// name through DNS, which costs tens of milliseconds on every no-op run.)
func hostName() -> String {
    var buffer = [CChar](repeating: 0, count: 256)
    guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
    return String(cString: buffer)
}
