// ARPACK's implicitly restarted Arnoldi (znaupd/zneupd) in shift-invert mode (mode 3): the
// eigenvalues of A x = λ B x nearest a shift σ are the largest of OP = (A − σB)⁻¹B, so they
// converge first. The caller supplies the solves with A − σB and the products with B; ARPACK's
// reverse communication calls back for each.
import CARPACK

public struct ArnoldiResult: Sendable {
    /// Eigenvalues λ (complex, interleaved), already transformed back from 1/(λ − σ).
    public var values: [Double]
    /// Ritz vectors, n × converged, column-major, complex interleaved.
    public var vectors: [Double]
    public var converged: Int
    public var restarts: Int
    public var operatorApplications: Int
}

public enum ShiftInvertArnoldi {
    /// `solve(b, x)`: x = (A − σB)⁻¹ b. `applyB(x, y)`: y = B x (nil: B = identity).
    /// `start`: a starting vector (complex, length 2n); ARPACK's random one when nil.
    /// `basisSize` (ncv) defaults to max(2·nev + 1, nev + 20), capped at n.
    public static func solve(size n: Int, count nev: Int, shift: Double, basisSize: Int? = nil,
                             tolerance: Double = 0, maxRestarts: Int = 300, start: [Double]? = nil,
                             solve: (UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void,
                             applyB: ((UnsafePointer<Double>, UnsafeMutablePointer<Double>) -> Void)?) throws -> ArnoldiResult {
        guard nev >= 1, nev <= n - 2 else { throw SparseError.tooManyEigenvalues(requested: nev, size: n) }
        var ncv = min(n, basisSize ?? max(2 * nev + 1, nev + 20))
        ncv = max(ncv, min(n, nev + 2))
        var ido: Int32 = 0, info: Int32 = start == nil ? 0 : 1
        var nn = Int32(n), nevI = Int32(nev), ncvI = Int32(ncv), ldv = Int32(n)
        var tol = tolerance
        var resid = start ?? [Double](repeating: 0, count: 2 * n)
        var v = [Double](repeating: 0, count: 2 * n * ncv)
        var iparam = [Int32](repeating: 0, count: 11)
        var ipntr = [Int32](repeating: 0, count: 14)
        iparam[0] = 1 // exact shifts
        iparam[2] = Int32(maxRestarts)
        iparam[6] = 3 // shift-invert
        var workd = [Double](repeating: 0, count: 2 * 3 * n)
        var lworkl = Int32(3 * ncv * ncv + 5 * ncv)
        var workl = [Double](repeating: 0, count: 2 * Int(lworkl))
        var rwork = [Double](repeating: 0, count: ncv)
        let bmat = applyB == nil ? "I" : "G"
        var scratch = [Double](repeating: 0, count: 2 * n)
        var applications = 0
        while true {
            bmat.withCString { b in
                "LM".withCString { w in
                    znaupd_(&ido, b, &nn, w, &nevI, &tol, &resid, &ncvI, &v, &ldv, &iparam, &ipntr, &workd, &workl, &lworkl,
                            &rwork, &info, 1, 2)
                }
            }
            if ido == 99 { break }
            let xAt = 2 * (Int(ipntr[0]) - 1), yAt = 2 * (Int(ipntr[1]) - 1), bxAt = 2 * (Int(ipntr[2]) - 1)
            workd.withUnsafeMutableBufferPointer { wd in
                let base = wd.baseAddress!
                switch ido {
                case -1:
                    // y = (A − σB)⁻¹ B x
                    if let applyB {
                        scratch.withUnsafeMutableBufferPointer { s in
                            applyB(base + xAt, s.baseAddress!)
                            solve(s.baseAddress!, base + yAt)
                        }
                    } else {
                        solve(base + xAt, base + yAt)
                    }
                    applications += 1
                case 1:
                    // B x is already at ipntr(3) (generalized) — the standard problem uses x itself.
                    solve(base + (applyB == nil ? xAt : bxAt), base + yAt)
                    applications += 1
                case 2:
                    applyB?(base + xAt, base + yAt)
                default:
                    break
                }
            }
            if ido != -1 && ido != 1 && ido != 2 { break }
        }
        if info == 1 {
            throw SparseError.noConvergence(converged: Int(iparam[4]), requested: nev, iterations: Int(iparam[2]))
        }
        guard info == 0 else { throw SparseError.arpack(routine: "znaupd", info: Int(info)) }

        var rvec: Int32 = 1
        var select = [Int32](repeating: 0, count: ncv)
        var d = [Double](repeating: 0, count: 2 * (nev + 1))
        var z = [Double](repeating: 0, count: 2 * n * nev)
        var ldz = Int32(n)
        var sigma: [Double] = [shift, 0]
        var workev = [Double](repeating: 0, count: 2 * 2 * ncv)
        var einfo: Int32 = 0
        "A".withCString { h in
            bmat.withCString { b in
                "LM".withCString { w in
                    zneupd_(&rvec, h, &select, &d, &z, &ldz, &sigma, &workev, b, &nn, w, &nevI, &tol, &resid, &ncvI, &v, &ldv,
                            &iparam, &ipntr, &workd, &workl, &lworkl, &rwork, &einfo, 1, 1, 2)
                }
            }
        }
        guard einfo == 0 else { throw SparseError.arpack(routine: "zneupd", info: Int(einfo)) }
        let converged = Int(iparam[4])
        guard converged >= nev else {
            throw SparseError.noConvergence(converged: converged, requested: nev, iterations: Int(iparam[2]))
        }
        return ArnoldiResult(values: Array(d[0 ..< 2 * nev]), vectors: z, converged: converged, restarts: Int(iparam[2]),
                             operatorApplications: applications)
    }
}
