// The processes that share one job: this process's rank among `size` peers and the collective
// operations the data-parallel trainer and the rank-partitioned runner need. `SingleProcess` is
// the group of one (every operation the identity); the Cluster module provides the MPI group
// when the binary runs under mpirun or srun. Domain modules see only this protocol, never MPI.
//
// Every rank must call the same collectives in the same order. Implementations bound each wait
// (a peer that died or hangs ends the job with a message instead of a hang), so the operations
// do not throw: a failed collective cannot be retried.
import Foundation

public protocol ProcessGroup: AnyObject, Sendable {
    var rank: Int { get }
    var size: Int { get }
    /// Element-wise sum over all ranks; every rank receives the result.
    func sum(_ values: [Float]) -> [Float]
    func sum(_ values: [Double]) -> [Double]
    /// Every rank's bytes, in rank order, on every rank. `patient`: the peers may legitimately
    /// be busy for a long time (a stage executing on another rank), so only the death of a peer
    /// ends the wait, not the timeout.
    func allGather(_ bytes: [UInt8], patient: Bool) -> [[UInt8]]
    /// Ends every rank of the job at once with `message` (printed by the calling rank).
    func abort(_ message: String) -> Never
}

extension ProcessGroup {
    /// This process's share of per-item work.
    public var partition: Partition { Partition(rank: rank, size: size) }
    public var isRoot: Bool { rank == 0 }

    /// Every rank's string, in rank order.
    public func allGather(_ text: String, patient: Bool = false) -> [String] {
        allGather(Array(text.utf8), patient: patient).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Waits until every rank got here.
    public func barrier(patient: Bool = false) { _ = allGather([], patient: patient) }

    /// Runs `body`; with several ranks an error on any one ends the whole job with its message at
    /// once (its peers may be waiting in a collective and would otherwise wait for the timeout).
    public func failingTogether<T>(_ body: () throws -> T) rethrows -> T {
        guard size > 1 else { return try body() }
        do { return try body() } catch { abort("\(error)") }
    }

    /// Rank 0's bytes on every rank.
    public func broadcast(_ bytes: [UInt8], patient: Bool = false) -> [UInt8] {
        allGather(isRoot ? bytes : [], patient: patient)[0]
    }
}

/// The group of one process: what every command uses outside mpirun.
public final class SingleProcess: ProcessGroup {
    public init() {}
    public var rank: Int { 0 }
    public var size: Int { 1 }
    public func sum(_ values: [Float]) -> [Float] { values }
    public func sum(_ values: [Double]) -> [Double] { values }
    public func allGather(_ bytes: [UInt8], patient: Bool) -> [[UInt8]] { [bytes] }
    public func abort(_ message: String) -> Never {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        exit(1)
    }
    public static let shared = SingleProcess()
}
