// HDF5ReaderProcess: where HDF5Snapshot's children come from. Forking this process for every file
// from outside costs what its size costs — page tables copied, then copy-on-write faults in both
// processes: 5–15 ms per file in a plain harmose, ≈ 40 ms in the fuzzing build (ASan, libFuzzer's
// tables). So after the first two files (forked here: one structure's worth, cheaper than
// starting it) a small helper is started, the reader process, and once it is ready every snapshot
// asks it to fork a fresh child for the file. The reader process is this same
// executable (/proc/self/exe) started again, which CHDF5Reader's constructor turns into the reader
// before main runs: small, one thread, and it never calls libhdf5 itself (it receives requests,
// forks, waits and relays the child's wait status). The isolation is unchanged: each file is
// parsed by libhdf5 in a child of its own that dies alone, and a crash is the reader's error
// naming the file and the object (HDF5Snapshot.decode), as before. Exec rather than a fork of this
// process: a fork would be as big as this process is at first use, and every later fork from it
// as costly. /proc/self/exe is this executable in every program that links HDF5Kit (harmose, its
// stage workers, the test bundle, the fuzz harness), so there is still no executable to find.
//
// One request at a time, over a Unix socket: this process makes a pipe, sends its write end
// (SCM_RIGHTS) and the request (the source — a path made absolute, or the image's bytes — its
// name and value budget); the reader forks a child that walks the file into the pipe, closes its
// own copy of the write end, waits for the child and sends back its wait status. This process reads
// the pipe to its end, then the status.
//
// Lifetime: the reader exits at end of file on its socket, i.e. when this process closes it or
// dies (the socket is close-on-exec, so programs this process starts do not hold it); while it
// waits for a child it watches the socket as well, and kills the child if this process is gone; a
// child gets SIGKILL if the reader dies (PR_SET_PDEATHSIG: the reader has one thread). The reader
// reaps its children, this process its reader (when it finds it gone, or `stop`). The reader
// inherits only its socket (descriptor 3) and stderr; stdin and stdout are /dev/null.
//
// Where the reader process cannot be started (no /proc, exec refused) or
// HARMOSE_HDF5_READER_PROCESS=0 is set (for comparing the two), each child is forked from this
// process instead (HDF5Snapshot.forkedRead), with the same isolation at the old cost.
import CHDF5
import CHDF5Reader
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class HDF5ReaderProcess: @unchecked Sendable {
    // @unchecked: every stored var is read and written only while `lock` is held.

    /// This process's reader process. Process-global because the reader process is one per
    /// process by nature — the helper that keeps fork cost small must be shared by every
    /// HDF5File, which are opened from many modules with no common context to carry it — and
    /// this is the whole of that state: the helper, how many snapshots were taken, and whether
    /// starting one failed.
    static let shared = HDF5ReaderProcess()

    /// Snapshots forked here before the reader process is started: starting it (an exec, loading
    /// the libraries, its warm-up) costs more than a few forks, so a command reading one
    /// structure's two files never starts it.
    static let forkedBeforeStart = 2

    private let lock = NSLock()
    /// The reader process, once it has greeted.
    private var helper: Helper?
    /// A reader process started and not yet ready: snapshots are forked here meanwhile.
    private var starting: Helper?
    private var snapshots = 0
    /// Starting a reader process failed (or is turned off): fork this process instead.
    private var unavailable = ProcessInfo.processInfo.environment["HARMOSE_HDF5_READER_PROCESS"] == "0"

    /// The snapshot stream of `source` and its child's wait status: from a child of the reader
    /// process, or forked here while there is none (yet). A reader process that died is replaced.
    func read(name: String, budget: Int, source: HDF5Snapshot.Source) throws -> (stream: [UInt8], status: Int32) {
        lock.lock(); defer { lock.unlock() }
        snapshots += 1
        for _ in 0 ..< 2 {
            disownInherited()
            if helper == nil && !unavailable && snapshots > Self.forkedBeforeStart {
                if starting == nil {
                    starting = Helper.launch()
                    unavailable = starting == nil
                }
                if let s = starting {
                    switch s.greeting(waitingMilliseconds: 0) {
                    case .ready: helper = s; starting = nil
                    case .notYet: break
                    case .failed: s.stop(); starting = nil; unavailable = true
                    }
                }
            }
            guard let h = helper else { break }
            do {
                return try h.read(name: name, budget: budget, source: source)
            } catch is Helper.Gone {
                h.stop()
                helper = nil
            }
        }
        return try HDF5Snapshot.forkedRead(name: name, budget: budget, source: source)
    }

    /// The reader process's id (started and waited for if need be), or nil where there is none.
    var processID: pid_t? {
        lock.lock(); defer { lock.unlock() }
        disownInherited()
        if helper == nil && !unavailable {
            let s = starting ?? Helper.launch()
            starting = nil
            if let s, s.greeting(waitingMilliseconds: 10_000) == .ready { helper = s } else { s?.stop(); unavailable = true }
        }
        return helper?.pid
    }

    /// In a fork of the process that started them, the helpers are that process's, not ours:
    /// close our copies of their sockets and start our own when needed.
    private func disownInherited() {
        for h in [helper, starting].compactMap({ $0 }) where h.owner != getpid() {
            close(h.socket)
            helper = nil
            starting = nil
        }
    }

    /// One reader process, seen from its parent.
    struct Helper {
        let pid: pid_t
        let socket: Int32
        /// The process that started it (the only one that may talk to it).
        let owner: pid_t

        /// The reader process died or broke the protocol.
        struct Gone: Error {}

        /// Starts a reader process and waits for its greeting; nil if it cannot be started.
        static func start() -> Helper? {
            guard let h = launch() else { return nil }
            guard h.greeting(waitingMilliseconds: 10_000) == .ready else { h.stop(); return nil }
            return h
        }

        /// Starts a reader process (without waiting for it); nil if it cannot be started.
        static func launch() -> Helper? {
            var fds: [Int32] = [-1, -1]
            guard harmose_hdf5_reader_socketpair(&fds) == 0 else { return nil }
            var environment = ProcessInfo.processInfo.environment
            environment["HARMOSE_HDF5_READER"] = "\(HARMOSE_HDF5_READER_SOCKET)"
            // OpenBLAS starts its thread pool when it loads; the reader never multiplies.
            environment["OPENBLAS_NUM_THREADS"] = "1"
            var entries = environment.map { strdup("\($0.key)=\($0.value)") }
            entries.append(nil)
            let pid = harmose_hdf5_reader_spawn(fds[1], entries)
            for e in entries { free(e) }
            close(fds[1])
            guard pid > 0 else { close(fds[0]); return nil }
            return Helper(pid: pid, socket: fds[0], owner: getpid())
        }

        enum Greeting { case ready, notYet, failed }

        /// Whether the reader process has greeted (it runs: its constructor took over before main),
        /// waiting up to `waitingMilliseconds`.
        func greeting(waitingMilliseconds: Int32) -> Greeting {
            var poller = pollfd(fd: socket, events: Int16(POLLIN), revents: 0)
            var ready: Int32
            repeat { ready = poll(&poller, 1, waitingMilliseconds) } while ready < 0 && errno == EINTR
            if ready == 0 { return waitingMilliseconds == 0 ? .notYet : .failed }
            var hello: UInt8 = 0
            return ready == 1 && recv(socket, &hello, 1, 0) == 1 && hello == UInt8(ascii: "H") ? .ready : .failed
        }

        func read(name: String, budget: Int, source: HDF5Snapshot.Source) throws -> (stream: [UInt8], status: Int32) {
            // The request: a header (its length first), then an image's bytes as they are.
            var header = SnapshotWriter(fd: -1)
            header.int(0)
            header.string(name)
            header.int(budget)
            var payload: [UInt8] = []
            switch source {
            case .path(let path):
                // The reader's working directory is this process's when it started, not now.
                header.byte(UInt8(ascii: "P"))
                header.string(path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path)
            case .image(let bytes):
                header.byte(UInt8(ascii: "I"))
                header.int(bytes.count)
                payload = bytes
            }
            withUnsafeBytes(of: Int64(header.buffer.count - 8).littleEndian) { header.buffer.replaceSubrange(0 ..< 8, with: $0) }
            var fds: [Int32] = [-1, -1]
            guard harmose_hdf5_reader_pipe(&fds) == 0 else {
                throw HDF5Error(file: name, message: "cannot start the HDF5 reader process: \(String(cString: strerror(errno)))")
            }
            defer { close(fds[0]) }
            let passed = harmose_hdf5_reader_send_fd(socket, fds[1])
            close(fds[1])
            guard passed == 0, sendAll(socket, header.buffer), sendAll(socket, payload) else { throw Gone() }
            let stream = HDF5Snapshot.readToEnd(fds[0])
            var reply = [UInt8](repeating: 0, count: 8)
            guard receiveAll(socket, &reply) else { throw Gone() }
            var r = SnapshotReader(bytes: reply)
            let kind = try r.int32(), value = try r.int32()
            guard kind == 0 else {
                throw HDF5Error(file: name, message: "cannot start the HDF5 reader process: \(String(cString: strerror(value)))")
            }
            return (stream, value)
        }

        /// Closes the socket (the reader exits at its end of file) and reaps the reader.
        func stop() {
            close(socket)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        }
    }

    // MARK: The reader process

    /// The reader process's loop (from CHDF5Reader's constructor, before main): one child per
    /// request, until its parent closes the socket.
    static func serve(socket: Int32) -> Never {
        let me = getpid()
        warmUp()
        guard sendAll(socket, [UInt8(ascii: "H")]) else { _exit(0) }
        while true {
            let fd = harmose_hdf5_reader_receive_fd(socket)
            guard fd >= 0 else { _exit(0) }
            var length = [UInt8](repeating: 0, count: 8)
            guard receiveAll(socket, &length) else { _exit(0) }
            var lengthReader = SnapshotReader(bytes: length)
            guard let count = try? lengthReader.int(), count >= 0 else { _exit(0) }
            var header = [UInt8](repeating: 0, count: count)
            guard receiveAll(socket, &header) else { _exit(0) }
            var r = SnapshotReader(bytes: header)
            let source: HDF5Snapshot.Source
            let name: String, budget: Int
            do {
                name = try r.string()
                budget = try r.int()
                if try r.byte() == UInt8(ascii: "P") {
                    source = .path(try r.string())
                } else {
                    let size = try r.int()
                    guard size >= 0 else { _exit(0) }
                    var image = [UInt8](repeating: 0, count: size)
                    guard receiveAll(socket, &image) else { _exit(0) }
                    source = .image(image)
                }
            } catch {
                _exit(0)
            }
            let pid = harmose_hdf5_reader_fork()
            if pid == 0 {
                close(socket)
                harmose_hdf5_reader_die_with_parent()
                if getppid() != me { _exit(1) }
                HDF5Snapshot.walkAndExit(source: source, name: name, budget: budget, to: fd)
            }
            let forkError = errno
            close(fd)
            var reply = SnapshotWriter(fd: -1)
            if pid < 0 {
                reply.int32(1); reply.int32(forkError)
            } else {
                reply.int32(0); reply.int32(waitWatching(pid, socket: socket))
            }
            guard sendAll(socket, reply.buffer) else { _exit(0) }
        }
    }

    /// Walks a file of the reader's own, made in memory, once before the first fork, so that its
    /// children start warm — libhdf5 initialised, its symbols and the Swift runtime's metadata for
    /// the walk resolved, the heap grown — instead of paying that for every file (in a debug build
    /// it was most of a child's life). No data from outside is involved: the file is written here,
    /// closed before the first fork, and the stream goes to /dev/null.
    static func warmUp() {
        let sink = open("/dev/null", O_WRONLY | O_CLOEXEC)
        guard sink >= 0 else { return }
        defer { close(sink) }
        do {
            let file = try HDF5File(creatingInMemory: "harmose-hdf5-reader-warm-up.h5")
            try file.write("g/doubles", doubles: [1, 2, 3, 4], shape: [2, 2])
            try file.write("g/floats", floats: [1, 2], shape: [2])
            try file.write("g/int64s", int64s: [1, 2], shape: [2, 1])
            try file.write("strings", strings: ["a", "b"], shape: [2])
            try file.setAttribute("text", string: "x", on: "g")
            try file.setAttribute("numbers", doubles: [1], on: "g/doubles")
            var walk = Walk(file: file, out: SnapshotWriter(fd: sink), budget: HDF5Snapshot.minValueBudget)
            try walk.run()
        } catch {
            // A warm-up that fails costs speed only.
        }
    }

    /// The wait status of child `pid`; if the socket ends meanwhile (the parent died), the child
    /// is killed and the reader exits.
    static func waitWatching(_ pid: pid_t, socket: Int32) -> Int32 {
        let pidfd = harmose_hdf5_reader_pidfd(pid)
        if pidfd >= 0 {
            var watched = [pollfd(fd: pidfd, events: Int16(POLLIN), revents: 0), pollfd(fd: socket, events: Int16(POLLIN), revents: 0)]
            while true {
                let n = poll(&watched, 2, -1)
                if n < 0 { if errno == EINTR { continue }; break }
                // Nothing is sent to the reader during a request: readable means end of file.
                if watched[1].revents != 0 {
                    kill(pid, SIGKILL)
                    var status: Int32 = 0
                    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                    _exit(0)
                }
                if watched[0].revents != 0 { break }
            }
            close(pidfd)
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return status
    }
}

/// The reader process's entry point, called by CHDF5Reader's constructor in a process started as
/// the reader; not for other callers.
@_cdecl("harmose_hdf5_reader_main")
public func _harmoseHDF5ReaderMain(_ socket: Int32) {
    HDF5ReaderProcess.serve(socket: socket)
}

/// Sends all of `bytes` (no SIGPIPE); false if the peer is gone.
private func sendAll(_ socket: Int32, _ bytes: [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeBytes { send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return false }
    }
    return true
}

/// Fills `bytes` from the socket; false at end of file or on an error.
private func receiveAll(_ socket: Int32, _ bytes: inout [UInt8]) -> Bool {
    var offset = 0
    while offset < bytes.count {
        let n = bytes[offset...].withUnsafeMutableBytes { recv(socket, $0.baseAddress, $0.count, 0) }
        if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return false }
    }
    return true
}
