// Bounds on what a file may ask the readers to allocate, and the geometric checks every reader
// applies where a structure enters. Every count or size read from outside is compared with one of
// these before anything is allocated; the message names the bound. Readers of new formats call
// `InputLimits.check…` the same way.
import Foundation
import Structures

public enum InputLimits {
    /// Atoms in one structure (the largest DeepH datasets have a few thousand).
    public static let maxAtoms = 100_000
    /// Radial shells per species (real bases have under 20).
    public static let maxShellsPerSpecies = 64
    /// Blocks in one operator file.
    public static let maxBlocks = 1 << 26

    /// Throws unless `count` ≤ `limit`, naming file, field and the bound.
    public static func check(_ count: Int, atMost limit: Int, _ what: String, file: String, field: String? = nil) throws {
        guard count <= limit else {
            throw FormatError(file: file, field: field, message: "\(count) \(what), over the limit of \(limit)")
        }
    }

    /// The lattice as read: refused when `StructureChecks.latticeProblem` finds a problem.
    public static func checkLattice(_ lattice: Lattice, file: String, field: String) throws {
        if let problem = StructureChecks.latticeProblem(lattice) {
            throw FormatError(file: file, field: field, message: "unusable lattice: \(problem)")
        }
    }

    /// Atom positions (after periodicity is known): two atoms closer than
    /// `StructureChecks.minimumAtomDistance` are refused, naming both (0-based, with elements).
    public static func checkAtomDistances(_ structure: Structure, file: String, field: String, oneBased: Bool = false) throws {
        guard let close = StructureChecks.closeAtoms(structure) else { return }
        let base = oneBased ? 1 : 0
        func atom(_ k: Int) -> String { "atom \(k + base) (\(Elements.symbol(of: structure.atomicNumbers[k]) ?? "?"))" }
        let image = close.shift == .zero ? "" : " in the cell shifted by [\(close.shift.x), \(close.shift.y), \(close.shift.z)]"
        let what = close.i == close.j ? "\(atom(close.i)) is \(String(format: "%.4f", close.distance)) Å from its own periodic image\(image)"
            : "\(atom(close.i)) and \(atom(close.j))\(image) are \(String(format: "%.4f", close.distance)) Å apart"
        throw FormatError(file: file, field: field, message: "\(what), closer than \(StructureChecks.minimumAtomDistance) Å (duplicated or misplaced atom?)")
    }
}
