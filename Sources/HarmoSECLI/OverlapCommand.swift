// `harmose overlap`: S from the basis set, without DFT (module Basis).
import ArgumentParser
import Basis
import Foundation
import StageAPI
import Training

struct OverlapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overlap",
        abstract: "Compute overlap matrices S from the basis set named in each structure's info.json.",
        discussion: """
        Each STRUCTURE is a folder with POSCAR and info.json (or a folder of such folders). The basis
        is resolved from info.json (docs/basis.md): "code": "gpaw…" with "basis": "dzp" uses GPAW's
        numerical orbitals and PAW setups from /usr/share/gpaw-setups (Debian gpaw-data) or
        --basis-path, including the PAW overlap correction; "basis": "def2-svp" uses the bundled
        Gaussian basis (PySCF's normalisation). Output: DIR/<name>/ with POSCAR, info.json and
        overlap.h5 (DeepH-dock layout), blocks wherever S is not identically zero (--threshold to
        sparsify), ready for `harmose predict` and `harmose bands`.

        Every structure is checked before anything is computed: unknown basis or missing files,
        elements absent from the basis, shells disagreeing with info.json, atoms closer than 0.5 Å,
        and an S that would not fit in memory are reported with the file and field.

        Example:
          harmose overlap data/crystals/graphene-2x2-0000 --out out/overlap
        """
    )

    @Argument(help: "structure folders (POSCAR + info.json) or folders of them")
    var structures: [String]

    @Option(name: .long, help: "output folder (one structure folder per input structure)")
    var out: String

    @Option(name: .customLong("basis-path"), help: "folder searched first for basis files (repeatable)")
    var basisPath: [String] = []

    @Option(name: .long, help: "keep blocks whose largest |S| exceeds this (default 0: every nonzero block)")
    var threshold: Double = 0

    @Option(name: .customLong("max-memory-gib"), help: "refuse structures whose S needs more memory (default: half the RAM)")
    var maxMemoryGiB: Double?

    @Flag(name: .shortAndLong, help: "no progress output")
    var quiet = false

    func run() throws {
        let job = OverlapJob(resolver: BasisResolver(searchPaths: basisPath), threshold: threshold,
                                 memoryLimit: maxMemoryGiB.map { UInt64($0 * 1073741824) } ?? ProcessInfo.processInfo.physicalMemory / 2)
            let folders = try OverlapJob.structureFolders(structures.map { URL(fileURLWithPath: $0) })
            let prepared = try folders.map { try job.prepare(name: $0.name, folder: $0.folder) }
            let root = URL(fileURLWithPath: out)
            let bar = TerminalProgress(isTerminal: !quiet && isatty(STDERR_FILENO) == 1)
            for (k, p) in prepared.enumerated() {
                let r = try job.write(p, under: root) { done, total in bar.update(done: done, total: total, suffix: p.name) }
                bar.finish()
                if !quiet {
                    print(String(format: "[%d/%d] %@: %d atoms, basis %@, %d blocks, %.2f s → %@", k + 1, prepared.count, p.name,
                                 p.record.structure.atomCount, p.calculator.basis.name, r.blocks, r.seconds,
                                 root.appendingPathComponent(p.name).path))
                }
            }
    }
}
