import Autograd
import Foundation
import Models
import Structures
import TestSupport
@testable import Training
import XCTest

/// The accuracy recipe: schedules, the weight average, the MSE+MAE mixture and the band loss as an
/// autograd op inside the training loop.
final class RecipeTests: XCTestCase {
    func testScheduleWarmsUpThenDecaysToTheFinalFactor() throws {
        for kind in [LRScheduleKind.cosine, .exponential] {
            let s = LRSchedule(kind: kind, warmupFraction: 0.1, finalFactor: 0.01)
            XCTAssertEqual(s.rate(base: 2, progress: 0), 0.02, accuracy: 1e-12)
            XCTAssertEqual(s.rate(base: 2, progress: 0.1), 2, accuracy: 1e-12)
            XCTAssertEqual(s.rate(base: 2, progress: 1), 0.02, accuracy: 1e-12)
            var previous = Double.infinity
            for i in 10 ... 100 {
                let r = s.rate(base: 2, progress: Double(i) / 100)
                XCTAssertLessThanOrEqual(r, previous + 1e-15, "\(kind) at \(i)")
                previous = r
            }
        }
        XCTAssertEqual(LRSchedule(kind: .cosine).rate(base: 1, progress: 0.5 + 0.015), 0.505, accuracy: 1e-3)
        XCTAssertEqual(LRSchedule.progress(step: 5, totalSteps: 10, seconds: 80, maxSeconds: 100), 0.8)
        XCTAssertEqual(LRSchedule.progress(step: 5, totalSteps: 10, seconds: 10, maxSeconds: 0), 0.5)
    }

    /// The batch op scatters each structure's gradient back to the rows of the block tensors:
    /// checked against finite differences of the op's own value on the water fixtures.
    func testBandLossOpGradientMatchesFiniteDifferences() throws {
        let records = try Dataset.readRecords(Tiny.data).prefix(2)
        var modelConfig = Tiny.config().model
        modelConfig.basis = try Dataset.basis(of: Array(records))
        let samples = try Dataset.samples(Array(records), config: modelConfig)
        let batch = try GraphBatch<Double>(samples.map(\.graph), config: modelConfig)
        let targets = try BatchTargets(batch, samples: samples)
        var blocks: [BlockGroup: Tensor<Double>] = [:]
        var rng = SplitMix64(seed: 12)
        for (g, t) in targets.values {
            blocks[g] = try Tensor(t.data.map { $0 + 0.02 * (Double(rng.next() >> 11) / Double(1 << 53) - 0.5) }, shape: t.shape, requiresGrad: true)
        }
        var config = BandLossConfig()
        config.bandsAbove = 3
        let loss = try BandLoss(config: config, records: Array(records))
        let value = try loss(blocks, batch: batch, stepSeed: 1)
        XCTAssertGreaterThan(value.count, 0)
        XCTAssertGreaterThan(value.loss.item, 0)
        try (value.loss * 3.0).backward()
        let step = 1e-6
        for g in blocks.keys.sorted() {
            let t = blocks[g]!
            for e in [0, t.count / 2, t.count - 1] {
                let saved = t.data[e]
                t.data[e] = saved + step
                let lp = try GradMode.withoutGrad { try loss(blocks, batch: batch, stepSeed: 1).loss.item }
                t.data[e] = saved - step
                let lm = try GradMode.withoutGrad { try loss(blocks, batch: batch, stepSeed: 1).loss.item }
                t.data[e] = saved
                let fd = 3 * (lp - lm) / (2 * step)
                XCTAssertEqual(t.grad![e], fd, accuracy: 1e-6 * max(1, abs(fd)), "\(g) entry \(e)")
            }
        }
    }

    static func recipe(epochs: Int) -> TrainConfig {
        var c = Tiny.config(epochs: epochs)
        c.loss = .mseMae
        c.maeWeight = 0.5
        c.lrSchedule = LRSchedule(kind: .cosine, warmupFraction: 0.25, finalFactor: 0.05)
        c.emaDecay = 0.9
        c.bandLoss.weight = 1
        return c
    }

    func testRecipeRunResumesExactlyAndLogsTheBandError() throws {
        let whole = try makeTemporaryDirectory(self), pieces = try makeTemporaryDirectory(self)
        try Trainer(config: Self.recipe(epochs: 4), outputDirectory: whole).run(data: Tiny.data)
        let first = Trainer(config: Self.recipe(epochs: 4), outputDirectory: pieces)
        first.stopAfterEpoch = 2
        try first.run(data: Tiny.data)
        try Trainer(config: Self.recipe(epochs: 4), outputDirectory: pieces).run(data: Tiny.data, resume: true)
        let curve = try Tiny.curve(whole)
        XCTAssertEqual(curve, try Tiny.curve(pieces))
        XCTAssertEqual(try Tiny.parameters(whole.appendingPathComponent("last.h5")), try Tiny.parameters(pieces.appendingPathComponent("last.h5")))
        XCTAssertEqual(try Tiny.parameters(whole.appendingPathComponent("best.h5")), try Tiny.parameters(pieces.appendingPathComponent("best.h5")))
        XCTAssertEqual(curve.count, 4)
        XCTAssertTrue(curve.allSatisfy { ($0["train_band_rmse_meV"] ?? 0) > 0 })
        // The last of 8 steps runs at progress 7/8: 1e-2 × (0.05 + 0.95 · ½(1 + cos(5π/6))) = 1.1e-3.
        XCTAssertEqual(curve.last!["learning_rate"]!, 1e-2 * (0.05 + 0.95 * 0.5 * (1 + cos(Double.pi * 5 / 6))), accuracy: 1e-9)
        // best.h5 holds the averaged weights, which differ from the raw ones in last.h5.
        XCTAssertNotEqual(try Tiny.parameters(whole.appendingPathComponent("best.h5")), try Tiny.parameters(whole.appendingPathComponent("last.h5")))
    }

    /// With a band loss, the best checkpoint is chosen by what the run optimises: the validation
    /// band error is part of the selection loss. Recomputed here from best.h5 on the validation
    /// structures (predictor, then the band loss at the fixed validation k-points), it must equal the
    /// curve's value at the best epoch.
    func testValidationBandErrorIsRecordedAndReproducibleFromTheBestCheckpoint() throws {
        let dir = try makeTemporaryDirectory(self)
        let config = Self.recipe(epochs: 3)
        try Trainer(config: config, outputDirectory: dir).run(data: Tiny.data)
        let curve = try Tiny.curve(dir)
        XCTAssertTrue(curve.allSatisfy { ($0["val_band_rmse_meV"] ?? 0) > 0 }, "\(curve)")
        let best = try XCTUnwrap(curve.last { $0["best"] == 1 })
        let sums = try Self.bestCheckpointValidationBands(dir, config: config.bandLoss)
        XCTAssertEqual((sums.squareSum / Double(sums.count)).squareRoot() * 1000, best["val_band_rmse_meV"]!, accuracy: 1e-3 * best["val_band_rmse_meV"]!)
    }

    /// The band sums of best.h5 in `dir` over the run's validation structures at the fixed
    /// validation k-points, recomputed outside the trainer with `config` (the training term's, or
    /// the selector's).
    static func bestCheckpointValidationBands(_ dir: URL, config: BandLossConfig) throws -> StructureBandLoss {
        let splits = try Splits.read(dir.appendingPathComponent("splits.json"))
        let records = try Dataset.readRecords(Tiny.data).filter { splits.validation.contains($0.name) }
        XCTAssertFalse(records.isEmpty)
        let predictor = try Predictor(checkpoint: dir.appendingPathComponent("best.h5"))
        var sums = StructureBandLoss()
        for record in records {
            let reference = try BandReference(record: record)
            var rng = SplitMix64(seed: BandLoss.validationSeed ^ BandLoss.nameHash(record.name))
            let r = try BandLoss.structure(predicted: try predictor.predict(record), reference: reference,
                                           kpoints: reference.sampleKPoints(config.kpoints, rng: &rng), config: config)
            sums.squareSum += r.squareSum; sums.absSum += r.absSum; sums.count += r.count
        }
        XCTAssertGreaterThan(sums.count, 0)
        return sums
    }

    /// best.h5 follows the configured selection metric: the curve's `best` flags mark exactly the
    /// epochs that lower that metric (validation loss, validation MAE, or validation band MAE),
    /// and best.h5 is the checkpoint of the last such epoch, whose number the metrics repeat.
    /// The band MAE is recomputed from best.h5 on the validation structures with the selector's
    /// fixed k-points.
    func testSelectionMetricPicksTheBestEpochByItsOwnNumber() throws {
        var flags: [[Bool]] = []
        for (selection, key) in [(SelectionMetric.loss, "val_loss"), (.mae, "val_mae_meV"), (.band, "val_band_mae_meV")] {
            let dir = try makeTemporaryDirectory(self)
            var config = Tiny.config(epochs: 14)
            config.loss = .mse
            config.learningRate = 0.2
            config.selection = selection
            let summary = try Trainer(config: config, outputDirectory: dir).run(data: Tiny.data)
            let curve = try Tiny.curve(dir)
            XCTAssertEqual(curve.count, 14)
            flags.append(curve.map { $0["best"] == 1 })
            var best = Double.infinity
            for row in curve {
                let improved = row[key]! < best
                XCTAssertEqual(row["best"] == 1, improved, "\(selection) epoch \(row["epoch"]!)")
                if improved { best = row[key]! }
            }
            let bestEpoch = curve.filter { $0["best"] == 1 }.last!["epoch"]!
            XCTAssertEqual(Double(summary.bestEpoch), bestEpoch, "\(selection)")
            XCTAssertEqual(selection == .loss ? summary.bestValidationLoss : summary.bestValidationLoss * 1000, best,
                           accuracy: 1e-9 * max(1, best), "\(selection)")
            XCTAssertEqual(curve.contains { $0["val_band_mae_meV"] != nil }, selection == .band, "the band MAE is computed only to select by it")
            if selection == .band {
                XCTAssertTrue(curve.allSatisfy { $0[key]! > 0 && $0[key]!.isFinite }, "\(curve)")
                let selector = try BandLoss.selector(bandsAbove: config.bandLoss.bandsAbove, records: [])
                XCTAssertEqual(selector.config.overlapThreshold, 1e-3)
                XCTAssertEqual(selector.config.kpoints, 8)
                let sums = try Self.bestCheckpointValidationBands(dir, config: selector.config)
                XCTAssertEqual(sums.absSum / Double(sums.count) * 1000, best, accuracy: 1e-3 * best)
            }
        }
        // The metrics disagree on this run (else the test could not tell them apart).
        XCTAssertNotEqual(flags[0], flags[1], "\(flags)")
        XCTAssertNotEqual(flags[1], flags[2], "\(flags)")
        // "last": every epoch replaces the best, so best.h5 is the final epoch's checkpoint, whose
        // validation MAE the summary reports — even where "mae" kept an earlier epoch.
        XCTAssertTrue(flags[1].contains(false), "the MAE run must have epochs that did not improve: \(flags[1])")
        do {
            let dir = try makeTemporaryDirectory(self)
            var config = Tiny.config(epochs: 14)
            config.loss = .mse
            config.learningRate = 0.2
            config.selection = .last
            config.earlyStoppingPatience = 1
            let summary = try Trainer(config: config, outputDirectory: dir).run(data: Tiny.data)
            let curve = try Tiny.curve(dir)
            XCTAssertEqual(curve.count, 14, "\"last\" never stops early")
            XCTAssertEqual(curve.map { $0["best"] == 1 }, Array(repeating: true, count: 14))
            XCTAssertEqual(summary.bestEpoch, 14)
            XCTAssertEqual(summary.bestValidationLoss * 1000, curve.last!["val_mae_meV"]!, accuracy: 1e-9 * curve.last!["val_mae_meV"]!)
        }
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("c.json")
        try Data(#"{"selection": "rmse"}"#.utf8).write(to: url)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("selection"), "\($0)") }
        try Data(#"{"selection": "mae"}"#.utf8).write(to: url)
        XCTAssertEqual(try TrainConfig.load(url).selection, .mae)
        XCTAssertEqual(try RefineConfig.load(url).selection, .mae)
        try Data(#"{"selection": "last"}"#.utf8).write(to: url)
        XCTAssertEqual(try TrainConfig.load(url).selection, .last)
        XCTAssertEqual(try RefineConfig.load(url).selection, .last)
        try Data(#"{"selection": "band"}"#.utf8).write(to: url)
        XCTAssertEqual(try TrainConfig.load(url).selection, .band)
        XCTAssertEqual(try RefineConfig.load(url).selection, .band)
    }

    func testBadRecipeKeysAreNamed() throws {
        let dir = try makeTemporaryDirectory(self)
        let url = dir.appendingPathComponent("c.json")
        try Data(#"{"band_loss": {"kpoints": 0}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("band_loss.kpoints"), "\($0)") }
        try Data(#"{"lr_schedule": {"kind": "cosine", "final_factor": 2}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try TrainConfig.load(url)) { XCTAssertTrue("\($0)".contains("lr_schedule.final_factor"), "\($0)") }
        try Data(#"{"loss": "mse+mae", "ema_decay": 0.999}"#.utf8).write(to: url)
        let c = try TrainConfig.load(url)
        XCTAssertEqual(c.loss, .mseMae)
        XCTAssertEqual(c.emaDecay, 0.999)
    }
}
