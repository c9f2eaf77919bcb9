// ABACUS CSR text out (`harmose convert … --to abacus-csr`, predictions for ABACUS users): a run
// directory with STRU and OUT.ABACUS/ holding data-HR-sparse_SPIN0.csr (SPIN1 for a spinful,
// spin-block-diagonal record), data-SR-sparse_SPIN0.csr in the ≤ 3.9.0 layout (which ABACUS,
// DeepH-pack and DeepH-dock all read), and a running_scf.log carrying only the lines that describe
// the basis, spin, electrons and Fermi level, so the folder reads back. Values are printed as
// ABACUS prints them ("%.8e", Rydberg for H, entries with |value| ≤ 1e-10 dropped, R in
// lexicographic order, each file listing every R of H or S), so ABACUS → HarmoSE → ABACUS gives
// the CSR files back byte for byte. Atoms are grouped by species, as ABACUS requires.
import Foundation
import Structures

enum ABACUSWriter {
    static let outFolder = "OUT.ABACUS"

    static func write(_ original: DFTRecord, to dir: URL) throws {
        let record = original.permutingAtoms(DeepHDock.atomOrder(for: original.structure))
        let s = record.structure
        try check(record, destination: dir.path)
        let out = dir.appendingPathComponent(outFolder)
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data(stru(s).utf8).write(to: dir.appendingPathComponent(ABACUS.struFile))
        try Data(log(record).utf8).write(to: out.appendingPathComponent(ABACUS.logFile))

        var hSpins: [BlockOperator] = []
        if let h = record.hamiltonian {
            hSpins = record.spinful ? [ABACUS.spinComponent(h, spin: 0), ABACUS.spinComponent(h, spin: 1)] : [h]
        }
        var shifts = Set<LatticeShift>()
        for op in hSpins + [record.overlap].compactMap({ $0 }) { shifts.formUnion(op.keys.map(\.shift)) }
        let ordered = shifts.sorted { ($0.x, $0.y, $0.z) < ($1.x, $1.y, $1.z) }
        let layout = OrbitalLayout(s)
        for (spin, h) in hSpins.enumerated() {
            try Data(csr(h, label: "H", shifts: ordered, layout: layout, scale: 1 / ABACUS.rydbergToEV).utf8)
                .write(to: out.appendingPathComponent("data-HR-sparse_SPIN\(spin).csr"))
        }
        if let o = record.overlap {
            try Data(csr(o, label: "S", shifts: ordered, layout: layout, scale: 1).utf8)
                .write(to: out.appendingPathComponent("data-SR-sparse_SPIN0.csr"))
        }
    }

    /// What the writer relies on, checked before anything is written.
    static func check(_ record: DFTRecord, destination: String) throws {
        let s = record.structure
        for z in s.species where s.basis[z] == nil {
            throw FormatError(file: destination, field: "basis", message: "no orbital shells for \(Elements.symbol(of: z) ?? "Z=\(z)")")
        }
        let counts = s.orbitalCounts
        for (name, op, spinful) in [("hamiltonian", record.hamiltonian, record.spinful), ("overlap", record.overlap, false)] {
            guard let op else { continue }
            let f = spinful ? 2 : 1
            for (b, key) in op.keys.enumerated() {
                guard (0 ..< s.atomCount).contains(key.i), (0 ..< s.atomCount).contains(key.j) else {
                    throw FormatError(file: destination, field: "\(name) block \(key)", message: "atom index out of range 0..<\(s.atomCount)")
                }
                let shape = op.shape(at: b)
                guard shape.x == f * counts[key.i], shape.y == f * counts[key.j] else {
                    throw FormatError(file: destination, field: "\(name) block \(key)", message: "shape (\(shape.x), \(shape.y)) inconsistent with the orbitals: expected (\(f * counts[key.i]), \(f * counts[key.j]))")
                }
                let values = Array(op.values(at: b))
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw FormatError(file: destination, field: "\(name) block \(key)", message: "non-finite value \(values[bad])")
                }
                if spinful {
                    let ni = counts[key.i], nj = counts[key.j]
                    for r in 0 ..< 2 * ni { for c in 0 ..< 2 * nj where (r < ni) != (c < nj) && values[r * 2 * nj + c] != 0 {
                        throw FormatError(file: destination, field: "\(name) block \(key)", message: "spin-off-diagonal entries: noncollinear (nspin = 4) data cannot be written as ABACUS CSR yet")
                    } }
                }
            }
        }
    }

    static func stru(_ s: Structure) -> String {
        let labels = s.species.map { Elements.symbol(of: $0)! }
        var t = "# Written by HarmoSE. Species files are placeholders: use the pseudopotentials and orbitals of the\n# calculation these matrices belong to.\n"
        t += "ATOMIC_SPECIES\n" + labels.map { "\($0) 1.0 \($0).upf\n" }.joined()
        t += "\nNUMERICAL_ORBITAL\n" + zip(labels, s.species).map { "\($0.0).orb  # shells l = \(s.basis[$0.1]!)\n" }.joined()
        // One Å in Bohr, with ABACUS's own constant, so lattice vectors and positions are in Å.
        t += "\nLATTICE_CONSTANT\n\(1 / ABACUS.bohrToAngstrom)\n\nLATTICE_VECTORS\n"
        t += s.lattice.vectors.map { "\($0.x) \($0.y) \($0.z)\n" }.joined()
        t += "\nATOMIC_POSITIONS\nCartesian_angstrom\n"
        for (z, label) in zip(s.species, labels) {
            let atoms = s.atomicNumbers.indices.filter { s.atomicNumbers[$0] == z }
            t += "\n\(label)\n0.0\n\(atoms.count)\n"
            t += atoms.map { let p = s.positions[$0]; return "\(p.x) \(p.y) \(p.z) 1 1 1\n" }.joined()
        }
        return t
    }

    static func log(_ record: DFTRecord) -> String {
        let s = record.structure
        var t = " Written by HarmoSE (harmose convert --to abacus-csr): the lines of an ABACUS running_scf.log that\n"
        t += " describe the basis, spin and Fermi level of the matrices in this folder. No ABACUS run wrote this file.\n"
        for (k, z) in s.species.enumerated() {
            let ls = s.basis[z]!.ls
            t += " READING ATOM TYPE \(k + 1)\n                               atom label = \(Elements.symbol(of: z)!)\n"
            for l in 0 ... (ls.max() ?? 0) { t += "                      L=\(l), number of zeta = \(ls.filter { $0 == l }.count)\n" }
            t += "             number of atom for this type = \(s.atomicNumbers.filter { $0 == z }.count)\n"
        }
        t += "                                    nspin = \(record.spinful ? 2 : 1)\n"
        t += "                                   NLOCAL = \(s.totalOrbitals)\n"
        if let n = record.electronCountForABACUS { t += "                      number of electrons = \(n)\n" }
        if let e = record.fermiEnergy { t += " EFERMI = \(e) eV\n" }
        return t
    }

    /// One matrix file in ABACUS ≤ 3.9.0's layout.
    static func csr(_ op: BlockOperator, label: String, shifts: [LatticeShift], layout: OrbitalLayout, scale: Double) -> String {
        let n = layout.total
        // Inverse tables: ABACUS position p of atom a is internal orbital inverse[a][p].
        let inverse = layout.index.map { idx -> [Int] in
            var inv = [Int](repeating: 0, count: idx.count)
            for (k, p) in idx.enumerated() { inv[p] = k }
            return inv
        }
        // Kept: what ABACUS keeps (|v| > 1e-10), with room for the eV ↔ Ry round trip of a value
        // that ABACUS printed as exactly 1.00000001e-10.
        let keep = ABACUS.sparseThreshold * (1 - 1e-9)
        var byShift: [LatticeShift: [(Int, Int, Int)]] = [:]      // (i, j, block index)
        for (b, key) in op.keys.enumerated() { byShift[key.shift, default: []].append((key.i, key.j, b)) }
        var text = "STEP: 0\nMatrix Dimension of \(label)(R): \(n)\nMatrix number of \(label)(R): \(shifts.count)\n"
        for r in shifts {
            let blocks = (byShift[r] ?? []).sorted { ($0.0, $0.1) < ($1.0, $1.1) }
            var values = "", columns = "", pointers = " 0"
            var nnz = 0
            var rowStart = 0
            for row in 0 ..< n {
                let a = layout.atomOfOrbital[row], p = row - layout.offsets[a]
                let k = inverse[a][p], rs = layout.sign[a][k]
                // Blocks of row atom a, in column (atom) order.
                while rowStart < blocks.count && blocks[rowStart].0 < a { rowStart += 1 }
                var e = rowStart
                while e < blocks.count && blocks[e].0 == a {
                    let (_, j, b) = blocks[e]
                    let nj = layout.counts[j]
                    let block = op.values(at: b)
                    let base = block.startIndex + k * nj
                    for q in 0 ..< nj {
                        let c = inverse[j][q]
                        let v = rs * layout.sign[j][c] * block[base + c] * scale
                        if abs(v) >= keep {
                            values += String(format: " %.8e", v)
                            columns += " \(layout.offsets[j] + q)"
                            nnz += 1
                        }
                    }
                    e += 1
                }
                pointers += " \(nnz)"
            }
            text += "\(r.x) \(r.y) \(r.z) \(nnz)\n"
            if nnz > 0 { text += values + "\n" + columns + "\n" + pointers + "\n" }
        }
        return text
    }
}

extension DFTRecord {
    /// Electrons per cell as `running_scf.log` prints them (from the `occupation` extra).
    var electronCountForABACUS: String? {
        guard let json = extraInfo.first(where: { $0.key == "occupation" })?.json, let n = Double(json) else { return nil }
        return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : "\(n)"
    }
}
