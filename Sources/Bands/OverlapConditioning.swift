// How close to singular a structure's overlap is: the smallest eigenvalue of S(k) over a set of
// k-points. Over-complete bases (GPAW dzp: ~1e-4) amplify an H error δ along that direction to
// about δ/s in the bands, so evaluation reports it beside the band error.
import Dispatch
import Foundation
import Linalg
import Structures

extension BlochSystem {
    /// min over `kpoints` of the smallest eigenvalue of S(k); 1 for an orthogonal basis.
    public func smallestOverlapEigenvalue(at kpoints: [Vec3]) throws -> Double {
        guard !isOrthogonal else { return 1 }
        var smallest = Double.infinity
        for k in kpoints {
            do {
                if let s = try Eigen.hermitian(overlap(at: k), vectors: false).values.first { smallest = min(smallest, s) }
            } catch let e as EigenError {
                throw BandsError.eigensolverFailed(k: k, underlying: e)
            }
        }
        return smallest
    }
}
