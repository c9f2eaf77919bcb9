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
    /// Largest |Cartesian coordinate| of an atom, Å (lattice vectors are at most 10⁵ Å). Beyond
    /// it, fractional coordinates and image shifts no longer fit the integers they are turned into.
    public static let maxCoordinate = 1.0e6

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

    /// Atom positions (after periodicity is known): a coordinate that is not finite or beyond
    /// `maxCoordinate` is refused, and so are two atoms closer than
    /// `StructureChecks.minimumAtomDistance`, naming the atoms (0-based, with elements).
    /// Coordinates finite and within ±maxCoordinate: the part of `checkAtomDistances` a reader
    /// needs before it converts positions (fractional parts, image shifts to Int), when the
    /// distance check itself must wait for the periodicity.
    public static func checkCoordinates(_ structure: Structure, file: String, field: String, oneBased: Bool = false) throws {
        for (k, p) in structure.positions.enumerated() where !(0 ..< 3).allSatisfy({ p[$0].isFinite && abs(p[$0]) <= maxCoordinate }) {
            throw FormatError(file: file, field: field, message: "atom \(k + (oneBased ? 1 : 0)) (\(Elements.symbol(of: structure.atomicNumbers[k]) ?? "?")) at (\(p.x), \(p.y), \(p.z)) Å: coordinates must be finite and within ±\(maxCoordinate) Å")
        }
    }

    public static func checkAtomDistances(_ structure: Structure, file: String, field: String, oneBased: Bool = false) throws {
        let base = oneBased ? 1 : 0
        func atom(_ k: Int) -> String { "atom \(k + base) (\(Elements.symbol(of: structure.atomicNumbers[k]) ?? "?"))" }
        try checkCoordinates(structure, file: file, field: field, oneBased: oneBased)
        guard let close = StructureChecks.closeAtoms(structure) else { return }
        let image = close.shift == .zero ? "" : " in the cell shifted by [\(close.shift.x), \(close.shift.y), \(close.shift.z)]"
        let what = close.i == close.j ? "\(atom(close.i)) is \(String(format: "%.4f", close.distance)) Å from its own periodic image\(image)"
            : "\(atom(close.i)) and \(atom(close.j))\(image) are \(String(format: "%.4f", close.distance)) Å apart"
        throw FormatError(file: file, field: field, message: "\(what), closer than \(StructureChecks.minimumAtomDistance) Å (duplicated or misplaced atom?)")
    }
}
