// Entry points. Built with libFuzzer (`make fuzz`: -sanitize=fuzzer,address and
// -D HARMOSE_LIBFUZZER) the harness named by HARMOSE_FUZZ_TARGET is libFuzzer's target;
// otherwise this is a plain program:
//   harmose-fuzz list                          the harnesses
//   harmose-fuzz seeds NAME DIR                write NAME's seeds into DIR (a corpus folder)
//   harmose-fuzz replay NAME [FILE|DIR …]      run NAME on its seeds, or on the files given
import Foundation

#if HARMOSE_LIBFUZZER
/// libFuzzer's C entry points take no context argument, so the selected harness and the
/// file-handle leak counters live in this one process-wide object (libFuzzer calls the entry
/// points from one thread; the lock makes the access rule explicit instead of unchecked).
final class FuzzSession: @unchecked Sendable {
    // @unchecked: every stored property is read and written only while `lock` is held.
    static let shared = FuzzSession()
    private let lock = NSLock()
    private var harness: Harness?
    private var executions = 0
    private var baselineHandles = -1

    var selected: Harness? {
        get { lock.lock(); defer { lock.unlock() }; return harness }
        set { lock.lock(); defer { lock.unlock() }; harness = newValue }
    }

    /// Counts one execution; returns (executions, baseline handles) after it, setting the
    /// baseline at the 100th.
    func count() -> (executions: Int, baseline: Int) {
        lock.lock(); defer { lock.unlock() }
        executions += 1
        if executions == 100 { baselineHandles = openHandles() }
        return (executions, baselineHandles)
    }
}

@_cdecl("LLVMFuzzerInitialize")
public func fuzzerInitialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt {
    let name = ProcessInfo.processInfo.environment["HARMOSE_FUZZ_TARGET"] ?? ""
    guard let h = Harnesses.named(name) else {
        FileHandle.standardError.write(Data("set HARMOSE_FUZZ_TARGET to one of: \(Harnesses.all.map(\.name).joined(separator: ", "))\n".utf8))
        exit(2)
    }
    FuzzSession.shared.selected = h
    // Warm up (lazy fixtures, the stage registry, HDF5's library start) before libFuzzer's
    // -timeout clock runs, so the first input is not charged for it.
    for seed in (try? h.seeds()) ?? [] { h.run(seed) }
    return 0
}

// SwiftPM links an executable target with its entry point renamed to `harmose_fuzz_main`
// (`main` is defined as that symbol), so libFuzzer's own `main` is never pulled in: start its
// driver from here instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("harmose_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector, fuzzerTestOneInput)
}

/// Open file descriptors of this process.
func openHandles() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? 0 }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    FuzzSession.shared.selected?.run(bytes)
    // A parser that leaks a file handle per input shows up here as a finding.
    let (executions, baselineHandles) = FuzzSession.shared.count()
    if executions % 5000 == 0, baselineHandles >= 0, openHandles() > baselineHandles + 32 {
        fatalError("file handle leak: \(openHandles()) open after \(executions) inputs, \(baselineHandles) after 100")
    }
    return 0
}
#else
@main
struct FuzzMain {
    static func main() throws {
        let args = Array(CommandLine.arguments.dropFirst())
        switch args.first {
        case "list":
            for h in Harnesses.all { print("\(h.name)\t\(h.summary)") }
        case "seeds":
            guard args.count == 3, let h = Harnesses.named(args[1]) else { usage() }
            let dir = URL(fileURLWithPath: args[2])
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (k, seed) in try h.seeds().enumerated() {
                try Data(seed).write(to: dir.appendingPathComponent("seed-\(k)"))
            }
        case "replay":
            guard args.count >= 2 else { usage() }
            let chosen = args[1] == "all" ? Harnesses.all : [Harnesses.named(args[1]) ?? { usage() }()]
            for h in chosen {
                var inputs: [[UInt8]] = []
                if args.count > 2 {
                    for path in args.dropFirst(2) { inputs += try files(path) }
                } else {
                    inputs = try h.seeds()
                }
                let start = Date()
                let verbose = ProcessInfo.processInfo.environment["HARMOSE_FUZZ_VERBOSE"] == "1"
                for input in inputs {
                    let outcome = h.run(input)
                    if verbose { say("  \(input.count) bytes: \(outcome.map { "rejected: \($0)" } ?? "accepted")") }
                }
                say("\(h.name): replayed \(inputs.count) inputs in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
            }
        default:
            usage()
        }
    }

    /// A line on stdout at once (not held in a buffer: the last line before a crash is the one
    /// that names the harness).
    static func say(_ line: String) {
        print(line)
        fflush(nil)
    }

    static func files(_ path: String) throws -> [[UInt8]] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { return [] }
        if !isDir.boolValue { return [[UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))] }
        return try FileManager.default.contentsOfDirectory(atPath: path).sorted().flatMap { try files("\(path)/\($0)") }
    }

    static func usage() -> Never {
        FileHandle.standardError.write(Data("usage: harmose-fuzz list | seeds NAME DIR | replay NAME|all [FILE|DIR …]\n".utf8))
        exit(2)
    }
}
#endif
