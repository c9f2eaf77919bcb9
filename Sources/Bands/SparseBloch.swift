// Sparse Bloch sums: H(k), S(k) (or any real combination a·H(k) + b·S(k)) as complex Hermitian
// matrices in compressed sparse rows, straight from the block operators. The pattern is built
// once from the atom pairs that hold a block (any R, either operator, either orientation) and
// reused at every k-point; per block only the offset of its segment in a row is kept, so memory
// is the pattern plus the values, both ∝ the number of stored blocks. Products O(k)·x are taken
// from the blocks themselves (no second matrix in memory).
import COpenBLAS
import Foundation
import Sparse
import Structures

public struct SparseBloch: Sendable {
    public let pattern: SparsePattern
    public let orbitalOffsets: [Int]
    public let orbitalCounts: [Int]
    /// For each block of H (resp. S): the position of its column segment inside each row of
    /// atom i (add `pattern.rowStart[row]`), and of the transposed partner's segment inside the
    /// rows of atom j (−1 when the partner is stored in the file).
    private let hSegment: [Int], hPartnerSegment: [Int]
    private let sSegment: [Int], sPartnerSegment: [Int]
    let hamiltonian: BlockOperator
    let overlap: BlockOperator?

    public init(_ system: BlochSystem) {
        let s = system.structure
        let offsets = s.orbitalOffsets, counts = s.orbitalCounts
        let na = s.atomCount
        var neighbours = [Set<Int>](repeating: [], count: na)
        for op in [system.hamiltonian, system.overlap].compactMap({ $0 }) {
            for key in op.keys { neighbours[key.i].insert(key.j); neighbours[key.j].insert(key.i) }
        }
        for i in 0 ..< na { neighbours[i].insert(i) } // the diagonal is always present (shifts)
        // Segment position of atom j inside the rows of atom i.
        var segment = [[Int: Int]](repeating: [:], count: na)
        var rowLength = [Int](repeating: 0, count: na)
        var sortedNeighbours = [[Int]](repeating: [], count: na)
        for i in 0 ..< na {
            let list = neighbours[i].sorted()
            sortedNeighbours[i] = list
            var at = 0
            for j in list { segment[i][j] = at; at += counts[j] }
            rowLength[i] = at
        }
        let n = s.totalOrbitals
        var rowStart = [Int](repeating: 0, count: n + 1)
        for i in 0 ..< na { for a in 0 ..< counts[i] { rowStart[offsets[i] + a + 1] = rowLength[i] } }
        for r in 0 ..< n { rowStart[r + 1] += rowStart[r] }
        var columns = [Int](repeating: 0, count: rowStart[n])
        for i in 0 ..< na {
            for a in 0 ..< counts[i] {
                var p = rowStart[offsets[i] + a]
                for j in sortedNeighbours[i] { for b in 0 ..< counts[j] { columns[p] = offsets[j] + b; p += 1 } }
            }
        }
        pattern = SparsePattern(size: n, rowStart: rowStart, columns: columns)
        orbitalOffsets = offsets
        orbitalCounts = counts
        func segments(_ op: BlockOperator) -> ([Int], [Int]) {
            var own = [Int](repeating: 0, count: op.blockCount), partner = [Int](repeating: -1, count: op.blockCount)
            for (b, key) in op.keys.enumerated() {
                own[b] = segment[key.i][key.j]!
                if !op.contains(key.transposed) { partner[b] = segment[key.j][key.i]! }
            }
            return (own, partner)
        }
        (hSegment, hPartnerSegment) = segments(system.hamiltonian)
        if let o = system.overlap { (sSegment, sPartnerSegment) = segments(o) } else { (sSegment, sPartnerSegment) = ([], []) }
        hamiltonian = system.hamiltonian
        overlap = system.overlap
    }

    public enum Operator { case hamiltonian, overlap }

    /// Complex values (interleaved, one pair per stored entry) of Σ coefficient·O(k).
    /// An orthogonal basis's overlap is the identity.
    public func values(_ terms: [(Operator, Double)], at k: Vec3) -> [Double] {
        var v = [Double](repeating: 0, count: 2 * pattern.nonzeros)
        v.withUnsafeMutableBufferPointer { out in
            for (which, coefficient) in terms where coefficient != 0 {
                switch which {
                case .hamiltonian: scatter(hamiltonian, hSegment, hPartnerSegment, coefficient, k, out)
                case .overlap:
                    if let overlap { scatter(overlap, sSegment, sPartnerSegment, coefficient, k, out) } else {
                        for r in 0 ..< pattern.size {
                            // Diagonal entry of row r: find it in the row's sorted columns.
                            let range = pattern.rowStart[r] ..< pattern.rowStart[r + 1]
                            var lo = range.lowerBound, hi = range.upperBound
                            while lo < hi { let mid = (lo + hi) / 2; if pattern.columns[mid] < r { lo = mid + 1 } else { hi = mid } }
                            out[2 * lo] += coefficient
                        }
                    }
                }
            }
        }
        return v
    }

    private func scatter(_ op: BlockOperator, _ own: [Int], _ partner: [Int], _ coefficient: Double, _ k: Vec3,
                         _ out: UnsafeMutableBufferPointer<Double>) {
        let o = out.baseAddress!
        op.entries.withUnsafeBufferPointer { eb in
            pattern.rowStart.withUnsafeBufferPointer { rowStart in
                let e = eb.baseAddress!
                for b in 0 ..< op.blockCount {
                    let key = op.keys[b]
                    let phase = 2 * Double.pi * (k.x * Double(key.shift.x) + k.y * Double(key.shift.y) + k.z * Double(key.shift.z))
                    let c = coefficient * cos(phase), s = coefficient * sin(phase)
                    let shape = op.shape(at: b), rows = shape.x, cols = shape.y
                    let r0 = orbitalOffsets[key.i], c0 = orbitalOffsets[key.j]
                    let block = e + op.offsets[b]
                    for a in 0 ..< rows {
                        var dst = o + 2 * (rowStart[r0 + a] + own[b]), src = block + a * cols
                        for _ in 0 ..< cols { dst[0] += src[0] * c; dst[1] += src[0] * s; dst += 2; src += 1 }
                    }
                    if partner[b] >= 0 {
                        // (−R, j, i) = blockᵀ with the conjugate phase.
                        for bb in 0 ..< cols {
                            var dst = o + 2 * (rowStart[c0 + bb] + partner[b]), src = block + bb
                            for _ in 0 ..< rows { dst[0] += src[0] * c; dst[1] -= src[0] * s; dst += 2; src += cols }
                        }
                    }
                }
            }
        }
    }

    /// y = O(k) x from the blocks (complex x, y of length 2n; y is overwritten). Each block is one
    /// small real GEMM on the interleaved (re, im) pairs — read as a (columns × 2) row-major
    /// matrix — followed by the Bloch phase; the missing Hermitian partner uses the transpose.
    public func multiply(_ which: Operator, at k: Vec3, _ x: UnsafePointer<Double>, _ y: UnsafeMutablePointer<Double>) {
        let n = pattern.size
        y.update(repeating: 0, count: 2 * n)
        let op: BlockOperator, partner: [Int]
        switch which {
        case .hamiltonian: op = hamiltonian; partner = hPartnerSegment
        case .overlap:
            guard let overlap else { y.update(from: x, count: 2 * n); return }
            op = overlap; partner = sPartnerSegment
        }
        let widest = orbitalCounts.max() ?? 0
        let t = UnsafeMutablePointer<Double>.allocate(capacity: 2 * widest)
        defer { t.deallocate() }
        op.entries.withUnsafeBufferPointer { e in
            op.keys.withUnsafeBufferPointer { keys in
                op.offsets.withUnsafeBufferPointer { offsets in
                    op.shapes.withUnsafeBufferPointer { shapes in
                        orbitalOffsets.withUnsafeBufferPointer { orbitalOffsets in
                            partner.withUnsafeBufferPointer { partner in
                                for b in 0 ..< keys.count {
                                    let key = keys[b]
                                    let phase = 2 * Double.pi * (k.x * Double(key.shift.x) + k.y * Double(key.shift.y) + k.z * Double(key.shift.z))
                                    let c = cos(phase), s = sin(phase)
                                    let rows = shapes[b].x, cols = shapes[b].y
                                    let r0 = orbitalOffsets[key.i], c0 = orbitalOffsets[key.j]
                                    let block = e.baseAddress! + offsets[b]
                                    // t = B x_j (rows × 2), then y_i += e^{iφ} t.
                                    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), 2, Int32(cols), 1,
                                                block, Int32(cols), x + 2 * c0, 2, 0, t, 2)
                                    var yi = y + 2 * r0
                                    for a in 0 ..< rows {
                                        let re = t[2 * a], im = t[2 * a + 1]
                                        yi[0] += c * re - s * im
                                        yi[1] += s * re + c * im
                                        yi += 2
                                    }
                                    if partner[b] >= 0 {
                                        // t = Bᵀ x_i (cols × 2), then y_j += e^{−iφ} t.
                                        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(cols), 2, Int32(rows), 1,
                                                    block, Int32(cols), x + 2 * r0, 2, 0, t, 2)
                                        var yj = y + 2 * c0
                                        for a in 0 ..< cols {
                                            let re = t[2 * a], im = t[2 * a + 1]
                                            yj[0] += c * re + s * im
                                            yj[1] += -s * re + c * im
                                            yj += 2
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}
