// Cluster: the MPI communicator of a job launched by mpirun or srun, as a StageAPI.ProcessGroup.
// Owns MPI initialisation and finalisation, the few collectives HarmoSE uses (sum of one flat
// Float or Double buffer, all-gather of variable-length bytes; barrier and broadcast derive from
// it) and abort with a message. Outside a launcher nothing here touches MPI: `Cluster.group` is
// SingleProcess and the binary behaves as it always did.
//
// Why MPI_Init only under a launcher: OpenMPI's singleton init (a plain `harmose` run) would start
// an orted daemon and open sockets for nothing (measured in docs/scaling.md), and a child process
// of a rank must not join the job. Detection uses the variables launchers set (OpenMPI's mpirun:
// OMPI_COMM_WORLD_SIZE; Slurm's srun with PMIx or PMI-2: PMIX_RANK, PMI_SIZE); a rank marks itself
// in HARMOSE_MPI_RANK so its children stay single processes.
//
// No rank hangs forever. A peer that died is reported by the launcher, which ends the job. The
// collectives of a training step are MPI's blocking ones (its tuned algorithms; the non-blocking
// ones only progress while polled and ran 30× slower here) under a watchdog: a collective still
// waiting after HARMOSE_MPI_TIMEOUT seconds (default 600) prints a message naming the operation
// and ends the job. "Patient" waits (a stage executing on another rank) are non-blocking and
// polled with growing sleeps, without a deadline: only a peer's death ends them.
import CMPI
import Foundation
import StageAPI

public enum Cluster {
    /// Environment variables whose presence means "started by an MPI launcher".
    public static let launcherVariables = ["OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"]
    /// Set by a rank for its own children (which must not join the job).
    public static let rankMarker = "HARMOSE_MPI_RANK"

    /// Whether this process was started by an MPI launcher as one rank of a job.
    public static func isLaunched(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        environment[rankMarker] == nil && launcherVariables.contains { environment[$0] != nil }
    }

    /// Seconds any one non-patient collective may wait for the other ranks.
    public static func timeout(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Double {
        environment["HARMOSE_MPI_TIMEOUT"].flatMap(Double.init).flatMap { $0 > 0 ? $0 : nil } ?? 600
    }

    /// The job's process group: MPI when launched by mpirun/srun, else the group of one.
    /// Initialises MPI at most once per process.
    public static func group() -> any ProcessGroup {
        guard isLaunched() else { return SingleProcess.shared }
        return MPIGroup.world
    }
}

/// MPI_COMM_WORLD. Collectives are called from one thread at a time (MPI_THREAD_SERIALIZED).
final class MPIGroup: ProcessGroup, @unchecked Sendable {
    let rank: Int
    let size: Int
    let timeout: Double
    private let comm = harmose_mpi_comm_world()
    private let watchdog: Watchdog

    static let world = MPIGroup()

    private init() {
        // Ranks waiting in a collective yield the core instead of spinning on it (unless the user
        // chose otherwise): ranks often share cores with other jobs or with their own stage
        // workers, and on the loaded 2-core machine this made 2-rank training 2.4× faster
        // (docs/scaling.md); a step's compute is milliseconds, so the microseconds a yield adds
        // to a collective's latency do not show.
        setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0)
        var provided: Int32 = 0
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv as UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?
        if MPI_Init_thread(&argc, &argv, harmose_mpi_thread_serialized(), &provided) != MPI_SUCCESS {
            FileHandle.standardError.write(Data("error: MPI_Init failed\n".utf8))
            exit(1)
        }
        var r: Int32 = 0, s: Int32 = 0
        MPI_Comm_rank(comm, &r)
        MPI_Comm_size(comm, &s)
        rank = Int(r)
        size = Int(s)
        timeout = Cluster.timeout()
        watchdog = Watchdog(rank: rank, size: size)
        setenv(Cluster.rankMarker, "\(rank)", 1)
        // Finalise on every normal exit (ArgumentParser exits through exit(3)); without it the
        // launcher reports the job as failed.
        atexit { var done: Int32 = 0; MPI_Finalized(&done); if done == 0 { MPI_Finalize() } }
        if provided < harmose_mpi_thread_serialized() {
            abort("this OpenMPI provides thread level \(provided); HarmoSE needs MPI_THREAD_SERIALIZED")
        }
    }

    func sum(_ values: [Float]) -> [Float] { reduce(values, type: harmose_mpi_float(), op: "sum of \(values.count) Float values") }
    func sum(_ values: [Double]) -> [Double] { reduce(values, type: harmose_mpi_double(), op: "sum of \(values.count) Double values") }

    private func reduce<T: Numeric>(_ values: [T], type: MPI_Datatype, op: String) -> [T] {
        guard values.count <= Int(Int32.max) else { abort("\(op): more than 2³¹ values in one all-reduce") }
        var out = [T](repeating: 0, count: values.count)
        watchdog.arm(seconds: timeout, operation: op)
        let code = values.withUnsafeBytes { send in
            out.withUnsafeMutableBytes { receive in
                MPI_Allreduce(send.baseAddress, receive.baseAddress, Int32(values.count), type, harmose_mpi_sum(), comm)
            }
        }
        watchdog.disarm()
        check(code, op)
        return out
    }

    func allGather(_ bytes: [UInt8], patient: Bool) -> [[UInt8]] {
        if !patient { watchdog.arm(seconds: timeout, operation: "all-gather of \(bytes.count) bytes") }
        defer { if !patient { watchdog.disarm() } }
        // Lengths first, then the bytes at their offsets.
        var lengths = [Int64](repeating: 0, count: size)
        var mine = Int64(bytes.count)
        var request: MPI_Request? = harmose_mpi_request_null()
        check(withUnsafeMutablePointer(to: &mine) { m in
            lengths.withUnsafeMutableBytes { MPI_Iallgather(m, 1, harmose_mpi_int64(), $0.baseAddress, 1, harmose_mpi_int64(), comm, &request) }
        }, "all-gather of lengths")
        withUnsafeMutablePointer(to: &mine) { _ in lengths.withUnsafeMutableBytes { _ in wait(&request, "all-gather of lengths", patient: patient) } }
        let total = lengths.reduce(0, +)
        guard total <= Int64(Int32.max) else { abort("all-gather of \(total) bytes: more than 2 GiB in one message") }
        var offsets = [Int32](repeating: 0, count: size), counts = lengths.map { Int32($0) }
        for r in 1 ..< max(size, 1) { offsets[r] = offsets[r - 1] + counts[r - 1] }
        var all = [UInt8](repeating: 0, count: Int(total))
        let op = "all-gather of \(total) bytes"
        check(bytes.withUnsafeBytes { send in
            all.withUnsafeMutableBytes { receive in
                MPI_Iallgatherv(send.baseAddress, Int32(bytes.count), harmose_mpi_byte(), receive.baseAddress, &counts, &offsets,
                                harmose_mpi_byte(), comm, &request)
            }
        }, op)
        bytes.withUnsafeBytes { _ in all.withUnsafeMutableBytes { _ in counts.withUnsafeMutableBytes { _ in
            offsets.withUnsafeMutableBytes { _ in wait(&request, op, patient: patient) }
        } } }
        return (0 ..< size).map { r in Array(all[Int(offsets[r]) ..< Int(offsets[r]) + Int(counts[r])]) }
    }

    func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error (rank \(rank) of \(size)): \(message)\n".utf8))
        MPI_Abort(comm, 1)
        exit(1)
    }

    private func check(_ code: Int32, _ op: String) {
        if code != MPI_SUCCESS { abort("MPI error \(code) in \(op)") }
    }

    /// Polls until the request completes: spinning for the first few thousand tests (MPI_Test
    /// is what moves a non-blocking collective along), then sleeping a little longer each time,
    /// up to 10 ms (a patient wait: the peers are busy, latency does not matter). Non-patient
    /// calls are also timed by the watchdog.
    private func wait(_ request: inout MPI_Request?, _ op: String, patient: Bool) {
        var done: Int32 = 0, polls = 0, pause: UInt32 = 20
        while true {
            check(MPI_Test(&request, &done, harmose_mpi_status_ignore()), op)
            if done != 0 { return }
            polls += 1
            if polls < 5000 { continue }
            usleep(pause)
            pause = min(pause * 2, 10_000)
        }
    }
}

/// Ends the job when a collective waits longer than its deadline: a thread that sleeps until the
/// armed deadline and, if the collective is still running, prints the message and exits; the
/// launcher then ends the other ranks. (MPI_Abort from a second thread would need
/// MPI_THREAD_MULTIPLE.)
final class Watchdog: @unchecked Sendable {
    private let condition = NSCondition()
    private var deadline: Date?
    private var operation = ""
    private var generation = 0
    private let rank: Int, size: Int

    init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
        let thread = Thread { [unowned self] in self.watch() }
        thread.name = "harmose-mpi-watchdog"
        thread.start()
    }

    func arm(seconds: Double, operation: String) {
        condition.lock()
        deadline = Date().addingTimeInterval(seconds)
        self.operation = operation
        generation += 1
        condition.signal()
        condition.unlock()
    }

    func disarm() {
        condition.lock()
        deadline = nil
        condition.unlock()
    }

    private func watch() {
        condition.lock()
        while true {
            guard let due = deadline else { condition.wait(); continue }
            let armed = generation
            if condition.wait(until: due) { continue }  // re-armed or disarmed
            if deadline != nil, armed == generation, Date() >= due {
                let seconds = Int(Cluster.timeout())
                FileHandle.standardError.write(Data("error (rank \(rank) of \(size)): no answer from the other ranks within \(seconds) s in the \(operation) (a rank died, is stuck, or runs a different command); set HARMOSE_MPI_TIMEOUT to wait longer\n".utf8))
                _exit(1)
            }
        }
    }
}
