// Checks on a record beyond what parsing enforces: Hermiticity of H and S (a warning — DFT data
// can be slightly non-Hermitian and still useful) and the consistency a writer needs.
import Foundation
import Structures

/// A problem worth reporting that does not stop reading.
public struct FormatWarning: CustomStringConvertible, Equatable, Sendable {
    public var record: String
    public var field: String
    public var message: String
    public var description: String { "warning: \(record): \(field): \(message)" }
}

/// Hermiticity of one operator: largest |O(R,i,j) − O(−R,j,i)ᵀ| over pairs, and how many blocks
/// lack their partner block.
public struct HermiticityReport: Equatable, Sendable {
    public var maxDeviation: Double
    public var unpairedBlocks: Int
    public var unpairedExamples: [BlockKey]

    public init(_ op: BlockOperator) {
        let (deviation, unpaired) = op.hermiticityDeviation()
        maxDeviation = deviation
        unpairedBlocks = unpaired.count
        unpairedExamples = Array(unpaired.prefix(3))
    }
}

public enum RecordValidation {
    /// Deviations above this (eV for H) are reported. Float32 storage keeps about 7 digits,
    /// DFT codes symmetrize to round-off; 1e-6 separates the two from real errors.
    public static let defaultHermiticityTolerance = 1e-6

    public static func hermiticity(of record: DFTRecord) -> (hamiltonian: HermiticityReport?, overlap: HermiticityReport?) {
        (record.hamiltonian.map(HermiticityReport.init), record.overlap.map(HermiticityReport.init))
    }

    /// Warnings for non-Hermitian data beyond `tolerance` and for blocks without their Hermitian
    /// partner. Never throws: the data stays usable.
    public static func validate(_ record: DFTRecord, hermiticityTolerance tolerance: Double = defaultHermiticityTolerance) -> [FormatWarning] {
        var warnings: [FormatWarning] = []
        let reports = hermiticity(of: record)
        for (field, report) in [("hamiltonian", reports.hamiltonian), ("overlap", reports.overlap)] {
            guard let report else { continue }
            if !(report.maxDeviation <= tolerance) {
                warnings.append(FormatWarning(record: record.name, field: field,
                    message: "not Hermitian: max |O(R,i,j) − O(−R,j,i)ᵀ| = \(report.maxDeviation) > tolerance \(tolerance)"))
            }
            if report.unpairedBlocks > 0 {
                warnings.append(FormatWarning(record: record.name, field: field,
                    message: "\(report.unpairedBlocks) blocks lack their Hermitian partner O(−R, j, i), e.g. \(report.unpairedExamples.map(\.description).joined(separator: ", "))"))
            }
        }
        return warnings
    }

    /// What a writer relies on: every species has shells, atom indices are in range, block shapes
    /// follow the orbitals, values are finite. Records from our readers always pass; records
    /// built in code (predictions) might not.
    static func checkWritable(_ record: DFTRecord, destination: String) throws {
        let s = record.structure
        guard s.positions.count == s.atomCount else {
            throw FormatError(file: destination, field: "structure", message: "\(s.positions.count) positions for \(s.atomCount) atoms")
        }
        for z in s.species {
            guard Elements.symbol(of: z) != nil else {
                throw FormatError(file: destination, field: "structure", message: "unknown element (atomic number \(z))")
            }
            guard s.basis[z] != nil else {
                throw FormatError(file: destination, field: "structure.basis", message: "no orbital shells for \(Elements.symbol(of: z)!)")
            }
        }
        guard (s.positions + s.lattice.vectors).allSatisfy({ $0.x.isFinite && $0.y.isFinite && $0.z.isFinite }) else {
            throw FormatError(file: destination, field: "structure", message: "non-finite position or lattice vector")
        }
        let counts = s.orbitalCounts
        for (field, op) in [("hamiltonian", record.hamiltonian), ("overlap", record.overlap)] {
            guard let op else { continue }
            for (b, key) in op.keys.enumerated() {
                guard (0 ..< s.atomCount).contains(key.i), (0 ..< s.atomCount).contains(key.j) else {
                    throw FormatError(file: destination, field: "\(field) block \(key)", message: "atom index out of range 0..<\(s.atomCount)")
                }
                let shape = op.shape(at: b)
                guard shape.x == counts[key.i], shape.y == counts[key.j] else {
                    throw FormatError(file: destination, field: "\(field) block \(key)", message: "shape (\(shape.x), \(shape.y)) inconsistent with the orbitals: expected (\(counts[key.i]), \(counts[key.j]))")
                }
                if op.values(at: b).contains(where: { !$0.isFinite }) {
                    throw FormatError(file: destination, field: "\(field) block \(key)", message: "non-finite value")
                }
            }
        }
    }
}
