// What `harmose inspect` reports about a record: counts, basis, block range and sizes, and
// Hermiticity. A plain Codable value so the CLI can print it as text or JSON.
import Foundation
import Structures

public struct RecordSummary: Codable, Equatable, Sendable {
    public struct Species: Codable, Equatable, Sendable {
        public var element: String
        public var atoms: Int
        /// l of each radial shell, in storage order.
        public var shells: [Int]
        public var orbitalsPerAtom: Int
    }

    public struct OperatorSummary: Codable, Equatable, Sendable {
        public var blocks: Int
        public var entries: Int
        /// Bytes of the entries as Float64.
        public var bytes: Int
        /// Per lattice direction, the smallest and largest R component among the blocks.
        public var shiftRange: [[Int]]
        public var hermiticityDeviation: Double
        public var unpairedBlocks: Int

        init(_ op: BlockOperator) {
            blocks = op.blockCount
            entries = op.entries.count
            bytes = 8 * op.entries.count
            var lo = [0, 0, 0], hi = [0, 0, 0]
            for (n, key) in op.keys.enumerated() {
                let r = [key.shift.x, key.shift.y, key.shift.z]
                for d in 0 ..< 3 {
                    lo[d] = n == 0 ? r[d] : min(lo[d], r[d])
                    hi[d] = n == 0 ? r[d] : max(hi[d], r[d])
                }
            }
            shiftRange = (0 ..< 3).map { [lo[$0], hi[$0]] }
            let report = HermiticityReport(op)
            hermiticityDeviation = report.maxDeviation
            unpairedBlocks = report.unpairedBlocks
        }
    }

    public var name: String
    public var atoms: Int
    public var orbitals: Int
    public var species: [Species]
    public var periodic: [Bool]
    public var lattice: [[Double]]
    public var fermiEnergyEV: Double?
    public var orthogonalBasis: Bool
    public var hamiltonian: OperatorSummary?
    public var overlap: OperatorSummary?
    public var warnings: [String]

    public init(_ record: DFTRecord, hermiticityTolerance: Double = RecordValidation.defaultHermiticityTolerance) {
        let s = record.structure
        name = record.name
        atoms = s.atomCount
        orbitals = s.totalOrbitals
        species = s.species.map { z in
            Species(element: Elements.symbol(of: z) ?? "Z\(z)", atoms: s.atomicNumbers.filter { $0 == z }.count,
                    shells: s.basis[z]?.ls ?? [], orbitalsPerAtom: s.basis[z]?.orbitalCount ?? 0)
        }
        periodic = s.lattice.periodic
        lattice = s.lattice.vectors.map { [$0.x, $0.y, $0.z] }
        fermiEnergyEV = record.fermiEnergy
        orthogonalBasis = record.orthogonalBasis
        hamiltonian = record.hamiltonian.map(OperatorSummary.init)
        overlap = record.overlap.map(OperatorSummary.init)
        warnings = RecordValidation.validate(record, hermiticityTolerance: hermiticityTolerance).map { "\($0.field): \($0.message)" }
    }

    /// A few human-readable lines.
    public var text: String {
        let shellLetters = ["s", "p", "d", "f", "g", "h", "i"]
        var lines = ["\(name): \(atoms) atoms, \(orbitals) orbitals, periodic \(periodic.map { $0 ? "T" : "F" }.joined())"
                     + (fermiEnergyEV.map { String(format: ", E_F = %.6f eV", $0) } ?? "")]
        for sp in species {
            let shells = sp.shells.map { $0 < shellLetters.count ? shellLetters[$0] : "l\($0)" }.joined(separator: " ")
            lines.append("  \(sp.element) ×\(sp.atoms): shells [\(shells)] = \(sp.orbitalsPerAtom) orbitals per atom")
        }
        for (label, op) in [("H", hamiltonian), ("S", overlap)] {
            guard let op else { lines.append("  \(label): absent"); continue }
            let range = op.shiftRange.map { "\($0[0])…\($0[1])" }.joined(separator: ", ")
            lines.append("  \(label): \(op.blocks) blocks, R ∈ [\(range)], \(op.entries) entries (\(op.bytes / 1024) KiB as Float64), "
                         + String(format: "Hermiticity deviation %.3g", op.hermiticityDeviation)
                         + (op.unpairedBlocks > 0 ? ", \(op.unpairedBlocks) unpaired blocks" : ""))
        }
        for w in warnings { lines.append("  warning: \(w)") }
        return lines.joined(separator: "\n")
    }
}
