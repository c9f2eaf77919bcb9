// CheckpointWriter.swift: the training loops' checkpoint writes (best.h5, last.h5), overlapped with
// the next epoch when the run has more than one thread.
//
// Why: libhdf5 spends about 50 µs per dataset, and a stage-1 checkpoint of the benchmark network
// held ~1700 of them (each parameter tensor, Adam's two moments): 75–160 ms per file, serial,
// against 0.3–0.8 s of data-parallel training per epoch on the benchmark sets — the largest serial
// part of a 2-thread epoch (issue #14). With parameters (format 2) and Adam's state flat, a
// checkpoint is now a few datasets, ~1 ms of libhdf5; the write still overlaps. The epoch's
// content is taken at the end of the epoch (`Checkpoint.take`, cheap: values shared copy-on-write),
// and written on a background thread while the next epoch trains; the files are the same bytes as
// a direct write, so results and artifacts do not change. A checkpoint that goes to several paths (best.h5 and last.h5 of an improved epoch, when their
// parts are the same) is written once and copied.
//
// One write is in flight at a time: submitting the next one, and `finish()` (before anything reads
// the files back, or the run ends), wait for it — so the waiting, if any, counts in the epoch that
// waits — and rethrow its error. With a thread budget of one the writes happen in place, as before:
// a single-thread run uses one core.
import Autograd
import Foundation

final class CheckpointWriter: @unchecked Sendable {
    // @unchecked: `failure` is written by the background write and read by the owner only after
    // `pending.wait()`, which orders the two.
    private let background: Bool
    private let queue = DispatchQueue(label: "harmose.checkpoint-writer")
    private let pending = DispatchGroup()
    private var failure: Error?

    /// `background`: write on another thread (the run has a thread budget above one).
    init(background: Bool) { self.background = background }

    /// Writes each image to its paths (in order; Checkpoint.swift's `CheckpointImage.write`), after
    /// the previous submission finished.
    func submit(_ writes: [(image: CheckpointImage, paths: [String])]) throws {
        try finish()
        guard background else {
            for w in writes { try w.image.write(to: w.paths) }
            return
        }
        pending.enter()
        queue.async { [self] in
            defer { pending.leave() }
            do { for w in writes { try w.image.write(to: w.paths) } } catch { failure = error }
        }
    }

    /// Returns when no write is in flight, rethrowing the last one's error.
    func finish() throws {
        pending.wait()
        if let failure {
            self.failure = nil
            throw failure
        }
    }
}
