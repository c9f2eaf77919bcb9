// The geometric sanity every structure must pass before anything computes with it: a lattice that
// can be inverted (finite, no zero or collinear/coplanar vectors, bounded lengths and
// conditioning) and no two atoms on top of each other (periodic images included). Readers call
// these where structures enter (Formats) and turn the answer into an error naming file and field;
// downstream code (k-paths, Bloch sums, plots) may then rely on a well-conditioned lattice.
import Foundation

public enum StructureChecks {
    /// Shortest accepted lattice vector, Å (no real cell is shorter than ~1.5 Å).
    public static let minimumVectorLength = 0.1
    /// Longest accepted lattice vector, Å (vacuum boxes are tens of Å).
    public static let maximumVectorLength = 1.0e5
    /// Smallest accepted |a1·(a2×a3)| / (|a1||a2||a3|): 1 for orthogonal vectors, 0 for coplanar
    /// ones (a3 = a1 + a2); below this the reciprocal lattice loses most of its digits.
    public static let minimumNormalisedVolume = 1.0e-6
    /// Two atoms closer than this (Å, periodic images included) are refused: the shortest bond
    /// in nature (H₂) is 0.74 Å, so anything closer is a duplicated or misplaced atom.
    public static let minimumAtomDistance = 0.5

    /// Why `lattice` cannot be used, or nil when it can.
    public static func latticeProblem(_ lattice: Lattice) -> String? {
        let v = lattice.vectors
        guard v.count == 3 else { return "has \(v.count) vectors, expected 3" }
        for (k, a) in v.enumerated() {
            guard a.x.isFinite, a.y.isFinite, a.z.isFinite else { return "a\(k + 1) = \(fmt(a)) is not finite" }
            let length = norm(a)
            guard length >= minimumVectorLength else {
                return length == 0 ? "a\(k + 1) is the zero vector" : "a\(k + 1) = \(fmt(a)) is \(length) Å long, shorter than \(minimumVectorLength) Å"
            }
            guard length <= maximumVectorLength else {
                return "a\(k + 1) is \(length) Å long, longer than \(maximumVectorLength) Å"
            }
        }
        let volume = abs(dot(v[0], cross(v[1], v[2])))
        let scale = norm(v[0]) * norm(v[1]) * norm(v[2])
        guard volume.isFinite, volume / scale >= minimumNormalisedVolume else {
            return "is degenerate: the vectors are (nearly) coplanar, cell volume \(volume) Å³ (|a1·(a2×a3)| / (|a1||a2||a3|) = \(volume / scale) < \(minimumNormalisedVolume))"
        }
        return nil
    }

    /// Two atoms closer than `threshold` (the first such pair found, i ≤ j, `shift` the lattice
    /// translation of j; i == j means an atom meets its own periodic image), or nil. Periodic
    /// directions are those `lattice.periodic` marks. O(N) with a cell list; needs a lattice
    /// that passed `latticeProblem`.
    public static func closeAtoms(_ structure: Structure, threshold: Double = minimumAtomDistance)
        -> (i: Int, j: Int, shift: LatticeShift, distance: Double)? {
        let lattice = structure.lattice
        let n = structure.atomCount
        guard n > 0, latticeProblem(lattice) == nil else { return nil }
        let v = lattice.vectors
        let volume = abs(dot(v[0], cross(v[1], v[2])))
        // Bins per direction: at least `threshold` thick (height of the cell along that direction).
        let heights = [volume / norm(cross(v[1], v[2])), volume / norm(cross(v[2], v[0])), volume / norm(cross(v[0], v[1]))]
        let periodic = lattice.periodic
        let binCount = (0 ..< 3).map { d in max(1, min(1 << 10, Int(heights[d] / threshold))) }
        var wrapped: [Vec3] = []
        wrapped.reserveCapacity(n)
        var bins: [SIMD3<Int>: [Int]] = [:]
        var binOf: [SIMD3<Int>] = []
        binOf.reserveCapacity(n)
        for p in structure.positions {
            var f = lattice.fractional(p)
            var b = SIMD3<Int>(0, 0, 0)
            for d in 0 ..< 3 {
                if periodic[d] { f[d] -= f[d].rounded(.down) }
                // Non-periodic: unbounded bin index (clamped far outside any real box).
                let x = (f[d] * Double(binCount[d])).rounded(.down)
                b[d] = Int(max(-1e9, min(1e9, x)))
                if periodic[d] { b[d] = min(max(b[d], 0), binCount[d] - 1) }
            }
            wrapped.append(lattice.cartesian(f))
            binOf.append(b)
            bins[b, default: []].append(wrapped.count - 1)
        }
        var best: (i: Int, j: Int, shift: LatticeShift, distance: Double)?
        for i in 0 ..< n {
            var visited = Set<SIMD3<Int>>()
            for dx in -1 ... 1 { for dy in -1 ... 1 { for dz in -1 ... 1 {
                var b = binOf[i] &+ SIMD3(dx, dy, dz)
                var shift = LatticeShift(0, 0, 0)
                for d in 0 ..< 3 where periodic[d] {
                    let m = binCount[d]
                    let q = Int((Double(b[d]) / Double(m)).rounded(.down))
                    shift[d] = q
                    b[d] -= q * m
                }
                // The same (bin, image) reached twice when a direction has fewer than 3 bins.
                guard visited.insert(SIMD3(b[0] &* 4096 &+ shift[0], b[1] &* 4096 &+ shift[1], b[2] &* 4096 &+ shift[2])).inserted else { continue }
                guard let members = bins[b] else { continue }
                let offset = lattice.translation(shift)
                for j in members where j > i || (j == i && shift != .zero) {
                    let d = norm(wrapped[j] + offset - wrapped[i])
                    if d < threshold, best == nil || d < best!.distance {
                        // Shift of j relative to i in the original (unwrapped) coordinates.
                        let delta = (wrapped[j] + offset - wrapped[i]) - (structure.positions[j] - structure.positions[i])
                        let s = lattice.fractional(delta)
                        best = (i, j, LatticeShift(Int(s.x.rounded()), Int(s.y.rounded()), Int(s.z.rounded())), d)
                    }
                }
            } } }
        }
        return best
    }

    static func fmt(_ a: Vec3) -> String { "(\(a.x), \(a.y), \(a.z))" }
}
