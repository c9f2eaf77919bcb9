// HarmoSE under `mpirun --allow-run-as-root --oversubscribe -np 2`, end to end through the built
// binary: data-parallel training equals one process (stated bound), a rank-partitioned pipeline
// writes the same bytes as one process, and a rank that fails, dies, stalls or sees other files
// ends the run with a message and nothing published. Skipped (with the reason) only where
// mpirun is absent; `make deps` installs it (Debian openmpi-bin).
//
// `--bind-to none`: mpirun pins each rank to one core by default, and the BLAS slab split still
// follows the visible core count (issue 13), which would change the last bits of every
// prediction; unpinned ranks see the machine a single process sees.
import Autograd
import Cluster
import Foundation
import HDF5Kit
import StageAPI
import TestSupport
import XCTest

struct Outcome {
    let status: Int32
    let output: String
    let seconds: Double
}

final class MPIRunTests: XCTestCase {
    static let mpirun: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first { FileManager.default.isExecutableFile(atPath: $0) }

    func requireMPI() throws -> String {
        guard let path = MPIRunTests.mpirun else {
            throw XCTSkip("mpirun not found: install Debian openmpi-bin (make deps) to run the MPI tests")
        }
        return path
    }

    /// Runs `harmose args` (under mpirun with `ranks` when given) in `dir`, with a hard limit.
    func harmose(_ args: [String], ranks: Int? = nil, in dir: URL, environment: [String: String] = [:],
                 mpiArguments: [String]? = nil, limit: Double = 120) throws -> Outcome {
        let process = Process()
        let binary = try builtHarmoseExecutable().path
        if let ranks {
            process.executableURL = URL(fileURLWithPath: try requireMPI())
            process.arguments = mpiArguments ?? (["--allow-run-as-root", "--oversubscribe", "--bind-to", "none", "-np", "\(ranks)", binary] + args)
        } else {
            process.executableURL = URL(fileURLWithPath: binary)
            process.arguments = args
        }
        process.currentDirectoryURL = dir
        var env = ProcessInfo.processInfo.environment
        env["HARMOSE_DIAGNOSTIC_KINDS"] = "1"
        // Containers often forbid the cross-process memory copies (ptrace scope) OpenMPI's
        // shared-memory transport prefers; plain copies work everywhere.
        env["OMPI_MCA_btl_vader_single_copy_mechanism"] = "none"
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let log = dir.appendingPathComponent("output-\(UUID().uuidString).txt")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        let start = Date()
        try process.run()
        while process.isRunning, Date().timeIntervalSince(start) < limit { usleep(20000) }
        if process.isRunning {
            process.terminate()
            process.waitUntilExit()
            XCTFail("\(args) did not finish within \(limit) s")
        }
        process.waitUntilExit()
        try handle.close()
        return Outcome(status: process.terminationStatus, output: (try? String(contentsOf: log, encoding: .utf8)) ?? "",
                       seconds: Date().timeIntervalSince(start))
    }

    func writeTinyConfig(_ dir: URL, epochs: Int) throws -> String {
        let url = dir.appendingPathComponent("tiny-\(epochs).json")
        try """
        {"epochs": \(epochs), "batch_size": 2, "split": [0.75, 0.25, 0], "learning_rate": 0.01,
         "model": {"irreps": "4x0e+2x1o+2x2e+1x3o+1x4e", "layers": 1, "radial_count": 4, "radial_hidden": 4}}
        """.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func curve(_ dir: URL) throws -> [[String: Double]] {
        try String(contentsOf: dir.appendingPathComponent("learning_curve.jsonl"), encoding: .utf8).split(separator: "\n").map {
            (try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]).compactMapValues { $0 as? Double }
        }
    }

    /// Every parameter of the checkpoint's groups (stage 1: "model"; hybrid: also "stage2").
    func parameters(_ checkpoint: URL) throws -> [String: [Float]] {
        let file = try HDF5File(readingAt: checkpoint.path)
        var out: [String: [Float]] = [:]
        for group in ["model", "stage2"] where file.exists(group) {
            for (n, values) in try Checkpoint.storedParameters(in: checkpoint.path, group: group) { out["\(group)/\(n)"] = values }
        }
        return out
    }

    /// Losses within 1e-4 relative and every parameter within `bound` absolute: 1e-4 for stage 1,
    /// 2e-4 for the hybrid (DataParallel.swift states why).
    func assertSameTraining(_ a: URL, _ b: URL, bound: Double = 1e-4, file: StaticString = #filePath, line: UInt = #line) throws {
        let ca = try curve(a), cb = try curve(b)
        XCTAssertEqual(ca.count, cb.count, file: file, line: line)
        for (x, y) in zip(ca, cb) {
            for key in ["train_loss", "val_loss", "train_mae_meV", "val_mae_meV"] {
                guard let u = x[key], let v = y[key] else { XCTFail("no \(key) in the learning curve", file: file, line: line); continue }
                XCTAssertLessThanOrEqual(abs(u - v), 1e-4 * max(abs(u), 1e-12), "\(key) epoch \(x["epoch"] ?? -1)", file: file, line: line)
            }
        }
        let pa = try parameters(a.appendingPathComponent("last.h5")), pb = try parameters(b.appendingPathComponent("last.h5"))
        XCTAssertEqual(Set(pa.keys), Set(pb.keys), file: file, line: line)
        var worst = 0.0
        for (name, values) in pa { worst = max(worst, maxAbsDifference(values.map(Double.init), pb[name]!.map(Double.init))) }
        XCTAssertLessThanOrEqual(worst, bound, "largest parameter difference", file: file, line: line)
        print("largest parameter difference \(a.path) vs \(b.path): \(worst)")
        XCTAssertGreaterThan(pa.values.reduce(0) { $0 + $1.count }, 1000, file: file, line: line)
    }

    func testTrainingOnTwoRanksEqualsOneProcessAndResumes() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        let data = Fixtures.path("training")  // 4 water molecules: 3 train (batches of 2 and 1), 1 validation
        let config3 = try writeTinyConfig(dir, epochs: 3), config2 = try writeTinyConfig(dir, epochs: 2)
        let single = try harmose(["train", "--config", config3, data, "--out", "single", "-q"], in: dir)
        XCTAssertEqual(single.status, 0, single.output)
        let two = try harmose(["train", "--config", config3, data, "--out", "two"], ranks: 2, in: dir)
        XCTAssertEqual(two.status, 0, two.output)
        // Rank 0 alone reports (one line per epoch) and writes.
        XCTAssertEqual(two.output.components(separatedBy: "epoch 3/3").count, 2, two.output)
        try assertSameTraining(dir.appendingPathComponent("single"), dir.appendingPathComponent("two"))

        // Resume under MPI: 2 epochs, then --resume to 3, equals the uninterrupted run.
        let first = try harmose(["train", "--config", config2, data, "--out", "resumed"], ranks: 2, in: dir)
        XCTAssertEqual(first.status, 0, first.output)
        let rest = try harmose(["train", "--config", config3, data, "--out", "resumed", "--resume"], ranks: 2, in: dir)
        XCTAssertEqual(rest.status, 0, rest.output)
        XCTAssertTrue(rest.output.contains("resuming after epoch 2"), rest.output)
        try assertSameTraining(dir.appendingPathComponent("two"), dir.appendingPathComponent("resumed"))

        // Refine (stage 2 with rotation augmentation and a joint epoch that trains stage 1 too).
        let refineConfig = dir.appendingPathComponent("refine.json")
        try #"{"epochs": 2, "batch_size": 2, "joint_epochs": 1, "stage2": {"width": 8, "heads": 2, "layers": 1, "feed_forward": 8, "sh_lmax": 2, "radial_count": 4, "augment_rotations": true}}"#
            .write(to: refineConfig, atomically: true, encoding: .utf8)
        let refine1 = try harmose(["refine", "--stage1", "single", "--config", refineConfig.path, data, "--out", "refine-single", "-q"], in: dir)
        XCTAssertEqual(refine1.status, 0, refine1.output)
        let refine2 = try harmose(["refine", "--stage1", "single", "--config", refineConfig.path, data, "--out", "refine-two", "-q"], ranks: 2, in: dir)
        XCTAssertEqual(refine2.status, 0, refine2.output)
        try assertSameTraining(dir.appendingPathComponent("refine-single"), dir.appendingPathComponent("refine-two"), bound: 2e-4)

        // More ranks than a batch holds: a clear error, no output folder.
        let three = try harmose(["train", "--config", config3, data, "--out", "three"], ranks: 3, in: dir)
        XCTAssertNotEqual(three.status, 0)
        XCTAssertTrue(three.output.contains("cannot be shared by 3 ranks"), three.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("three").path))
    }

    /// Every file of every artifact, relative path → bytes, except the run's own records.
    func artifactFiles(_ outputs: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        let fm = FileManager.default
        for stage in try fm.contentsOfDirectory(atPath: outputs.path) where !stage.hasPrefix(".") {
            let latest = outputs.appendingPathComponent(stage).appendingPathComponent("latest").resolvingSymlinksInPath()
            guard fm.fileExists(atPath: latest.path) else { continue }
            for rel in try fm.subpathsOfDirectory(atPath: latest.path) {
                let url = latest.appendingPathComponent(rel)
                var isDir: ObjCBool = false
                guard fm.fileExists(atPath: url.path, isDirectory: &isDir), !isDir.boolValue,
                      !["manifest.json", "log.txt"].contains(url.lastPathComponent) else { continue }
                out["\(stage)/\(rel)"] = try Data(contentsOf: url)
            }
        }
        return out
    }

    func testPartitionedPipelineWritesTheSingleProcessBytes() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Fixtures.url("training"), to: dir.appendingPathComponent("data"))
        let model = try harmose(["train", "--config", try writeTinyConfig(dir, epochs: 1), "data", "--out", "model", "-q"], in: dir)
        XCTAssertEqual(model.status, 0, model.output)
        try """
        {"version": 1, "stages": {
          "ingest": {"kind": "ingest", "inputs": {"dataset": "data"}},
          "bands": {"kind": "bands", "inputs": {"structures": {"stage": "ingest"}}},
          "predict": {"kind": "predict", "inputs": {"model": "model/best.h5", "data": {"stage": "ingest"}}},
          "evaluate": {"kind": "evaluate", "inputs": {"predictions": {"stage": "predict"}, "reference": {"stage": "ingest"}}}
        }}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let single = try harmose(["run", "-j", "1"], in: dir)
        XCTAssertEqual(single.status, 0, single.output)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("outputs"), to: dir.appendingPathComponent("single"))
        let two = try harmose(["run"], ranks: 2, in: dir)
        XCTAssertEqual(two.status, 0, two.output)

        let a = try artifactFiles(dir.appendingPathComponent("single")), b = try artifactFiles(dir.appendingPathComponent("outputs"))
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        XCTAssertGreaterThan(a.count, 30)
        for (path, bytes) in a where b[path] != bytes { XCTFail("\(path) differs between one process and two ranks") }
        for stage in ["ingest", "bands", "predict"] {
            let manifest = try JSONValue.parse(Data(contentsOf: dir.appendingPathComponent("outputs/\(stage)/latest/manifest.json")))
            XCTAssertEqual(manifest["partition"]?["size"]?.intValue, 2, stage)
        }
        // No rank left a temporary directory behind.
        for stage in ["ingest", "bands", "predict", "evaluate"] {
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("outputs/\(stage)").path)
            XCTAssertEqual(names.filter { $0.hasPrefix(".") }, [], stage)
        }
    }

    func testTrainingStagesOfARunAreDataParallel() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Fixtures.url("training"), to: dir.appendingPathComponent("data"))
        _ = try writeTinyConfig(dir, epochs: 2)
        try """
        {"version": 1, "stages": {
          "ingest": {"kind": "ingest", "inputs": {"dataset": "data"}},
          "train": {"kind": "train", "inputs": {"data": {"stage": "ingest"}, "config": "tiny-2.json"}},
          "refine": {"kind": "refine", "inputs": {"model": {"stage": "train"}, "data": {"stage": "ingest"}},
                     "params": {"epochs": 2, "batch_size": 2, "width": 8, "heads": 2, "layers": 1, "feed_forward": 8, "sh_lmax": 2}}
        }}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let single = try harmose(["run", "--outputs", "single"], in: dir)
        XCTAssertEqual(single.status, 0, single.output)
        let two = try harmose(["run", "--outputs", "two"], ranks: 2, in: dir)
        XCTAssertEqual(two.status, 0, two.output)
        for stage in ["train", "refine"] {
            try assertSameTraining(dir.appendingPathComponent("single/\(stage)/latest").resolvingSymlinksInPath(),
                                   dir.appendingPathComponent("two/\(stage)/latest").resolvingSymlinksInPath(), bound: stage == "refine" ? 2e-4 : 1e-4)
            let log = try String(contentsOf: dir.appendingPathComponent("two/\(stage)/latest/log.txt"), encoding: .utf8)
            XCTAssertTrue(log.contains("--- rank 1 ---"), "rank 1's log is kept in the artifact's")
            let names = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("two/\(stage)").path)
            XCTAssertEqual(names.filter { $0.hasPrefix(".") }, [], stage)
        }
    }

    func writeCopyPipeline(_ dir: URL, params: String) throws {
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("data"), withIntermediateDirectories: true)
        for i in 0 ..< 6 { try Data("file \(i)\n".utf8).write(to: dir.appendingPathComponent("data/f\(i).txt")) }
        try """
        {"version": 1, "stages": {"copy": {"kind": "diagnostic-copy", "inputs": {"source": "data"}, "params": \(params)}}}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
    }

    func assertNothingPublished(_ outputs: URL, stage: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = outputs.appendingPathComponent(stage)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        XCTAssertEqual(names.filter { !$0.hasPrefix(".") && $0 != "failed.json" && $0 != "failed.log" }, [], file: file, line: line)
    }

    func testFailingRankFailsTheStageOnEveryRank() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try writeCopyPipeline(dir, params: #"{"fail_rank": 1}"#)
        let run = try harmose(["run"], ranks: 2, in: dir, limit: 60)
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("stage 'copy' failed: rank 1 of 2: rank 1 failing on request"), run.output)
        XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("outputs/copy/failed.json").path))
        try assertNothingPublished(dir.appendingPathComponent("outputs"), stage: "copy")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("outputs/copy").path)
        XCTAssertEqual(names.filter { $0.hasPrefix(".tmp") }, [])
    }

    func testKilledRankEndsTheRunWithNothingPublished() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try writeCopyPipeline(dir, params: #"{"kill_rank": 1, "delay_ms": 100}"#)
        let run = try harmose(["run"], ranks: 2, in: dir, limit: 60)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("signal 9"), run.output)
        try assertNothingPublished(dir.appendingPathComponent("outputs"), stage: "copy")
        // The next run clears what the dead job left and completes.
        try writeCopyPipeline(dir, params: "{}")
        let again = try harmose(["run"], ranks: 2, in: dir, limit: 60)
        XCTAssertEqual(again.status, 0, again.output)
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("outputs/copy").path)
        XCTAssertEqual(names.filter { $0.hasPrefix(".tmp") }, [])
    }

    func testStalledRankIsCaughtByTheTimeout() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try """
        {"version": 1, "stages": {"sum": {"kind": "diagnostic-allreduce", "params": {"stall_rank": 1, "stall_seconds": 60}}}}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let run = try harmose(["run"], ranks: 2, in: dir, environment: ["HARMOSE_MPI_TIMEOUT": "2"], limit: 50)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertLessThan(run.seconds, 40, "the 2 s timeout ended the job, not the stalled rank's 60 s sleep")
        XCTAssertTrue(run.output.contains("no answer from the other ranks within 2 s in the sum of 1000 Float values"), run.output)
        try assertNothingPublished(dir.appendingPathComponent("outputs"), stage: "sum")

        // Without the stall the collective stage completes on both ranks.
        try """
        {"version": 1, "stages": {"sum": {"kind": "diagnostic-allreduce", "params": {"value": 1.5}}}}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let ok = try harmose(["run"], ranks: 2, in: dir, limit: 60)
        XCTAssertEqual(ok.status, 0, ok.output)
        XCTAssertEqual(try String(contentsOf: dir.appendingPathComponent("outputs/sum/latest/sum.txt"), encoding: .utf8), "3.0\n")
    }

    func testRanksThatSeeDifferentFilesAreRefused() throws {
        _ = try requireMPI()
        let root = try makeTemporaryDirectory(self)
        // Two "machines": the same pipeline and data paths, different bytes; one shared outputs/.
        for (machine, content) in [("a", "one"), ("b", "two")] {
            let dir = root.appendingPathComponent(machine)
            try writeCopyPipeline(dir, params: "{}")
            try Data(content.utf8).write(to: dir.appendingPathComponent("data/f0.txt"))
        }
        let binary = try builtHarmoseExecutable().path
        let outputs = root.appendingPathComponent("outputs").path
        let args = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                    "-np", "1", "-wdir", root.appendingPathComponent("a").path, binary, "run", "--outputs", outputs, ":",
                    "-np", "1", "-wdir", root.appendingPathComponent("b").path, binary, "run", "--outputs", outputs]
        let run = try harmose([], ranks: 2, in: root, mpiArguments: args, limit: 60)
        XCTAssertNotEqual(run.status, 0, run.output)
        XCTAssertTrue(run.output.contains("rank 1 of 2 sees different inputs than rank 0 for stage 'copy'"), run.output)
        try assertNothingPublished(URL(fileURLWithPath: outputs), stage: "copy")

        // Training: rank 1's copy of the dataset lacks a structure.
        for (machine, count) in [("a", 4), ("b", 3)] {
            for i in 0 ..< count {
                try FileManager.default.copyItem(at: Fixtures.url("training/water-000\(i)"),
                                                 to: root.appendingPathComponent("\(machine)/water/water-000\(i)"))
            }
        }
        let config = try writeTinyConfig(root, epochs: 1)
        let train = ["--allow-run-as-root", "--oversubscribe", "--bind-to", "none",
                     "-np", "1", "-wdir", root.appendingPathComponent("a").path, binary, "train", "--config", config, "water", "--out", root.appendingPathComponent("run").path, ":",
                     "-np", "1", "-wdir", root.appendingPathComponent("b").path, binary, "train", "--config", config, "water", "--out", root.appendingPathComponent("run").path]
        let trained = try harmose([], ranks: 2, in: root, mpiArguments: train, limit: 60)
        XCTAssertNotEqual(trained.status, 0, trained.output)
        XCTAssertTrue(trained.output.contains("read different data than rank 0"), trained.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: root.appendingPathComponent("run/best.h5").path))
    }

    func testMoreRanksThanStructuresIsAnError() throws {
        _ = try requireMPI()
        let dir = try makeTemporaryDirectory(self)
        try FileManager.default.copyItem(at: Fixtures.url("training/water-0000"), to: dir.appendingPathComponent("data/water-0000"))
        try """
        {"version": 1, "stages": {"ingest": {"kind": "ingest", "inputs": {"dataset": "data"}}}}
        """.write(to: dir.appendingPathComponent("pipeline.json"), atomically: true, encoding: .utf8)
        let run = try harmose(["run"], ranks: 2, in: dir, limit: 60)
        XCTAssertEqual(run.status, 1, run.output)
        XCTAssertTrue(run.output.contains("1 structure(s) cannot be shared by 2 MPI ranks: run with at most 1 ranks"), run.output)
        try assertNothingPublished(dir.appendingPathComponent("outputs"), stage: "ingest")
    }

    func testLaunchDetection() {
        XCTAssertFalse(Cluster.isLaunched([:]))
        XCTAssertTrue(Cluster.isLaunched(["OMPI_COMM_WORLD_SIZE": "2"]))
        XCTAssertTrue(Cluster.isLaunched(["PMIX_RANK": "0"]))
        XCTAssertTrue(Cluster.isLaunched(["PMI_SIZE": "4"]))
        // A child process of a rank stays a single process.
        XCTAssertFalse(Cluster.isLaunched(["OMPI_COMM_WORLD_SIZE": "2", "HARMOSE_MPI_RANK": "1"]))
        XCTAssertEqual(Cluster.timeout(["HARMOSE_MPI_TIMEOUT": "2.5"]), 2.5)
        XCTAssertEqual(Cluster.timeout([:]), 600)
        // Outside a launcher the group is the single process, and nothing initialised MPI.
        XCTAssertTrue(Cluster.isLaunched() || Cluster.group() is SingleProcess)
    }
}
