// MatrixOps.swift: matrix products on BLAS — matmul, batched matmul and the fused linear map
// x·W + b — with their backward products written as BLAS calls that accumulate (beta = 1)
// straight into the gradient buffers.
import Linalg

extension Tensor {
    /// op(self)·op(other) for 2-D tensors; `transposeA/B` use the transpose without copying.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard rank == 2, other.rank == 2 else {
            throw TensorError("matmul", "needs 2-D operands, got \(shape) and \(other.shape) (use bmm for batches, linear for [..., in] inputs)")
        }
        let (m, k) = transposeA ? (shape[1], shape[0]) : (shape[0], shape[1])
        let (k2, n) = transposeB ? (other.shape[1], other.shape[0]) : (other.shape[0], other.shape[1])
        guard k == k2 else {
            throw TensorError("matmul", "inner dimensions differ: \(shape)\(transposeA ? "ᵀ" : "") · \(other.shape)\(transposeB ? "ᵀ" : "") (\(k) vs \(k2))")
        }
        return try bmmCore(other, batch: 1, m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                           outShape: [m, n], op: "matmul")
    }

    /// Batched product [B, m, k]·[B, k, n] → [B, m, n] (with optional transposes of the last two axes).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func bmm(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        guard rank == 3, other.rank == 3 else {
            throw TensorError("bmm", "needs 3-D operands [batch, rows, cols], got \(shape) and \(other.shape)")
        }
        guard shape[0] == other.shape[0] else {
            throw TensorError("bmm", "batch sizes differ: \(shape) vs \(other.shape)")
        }
        let (m, k) = transposeA ? (shape[2], shape[1]) : (shape[1], shape[2])
        let (k2, n) = transposeB ? (other.shape[2], other.shape[1]) : (other.shape[1], other.shape[2])
        guard k == k2 else {
            throw TensorError("bmm", "inner dimensions differ: \(shape) · \(other.shape) (\(k) vs \(k2))")
        }
        return try bmmCore(other, batch: shape[0], m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                           outShape: [shape[0], m, n], op: "bmm")
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    private func bmmCore(_ other: Tensor, batch: Int, m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool,
                         outShape: [Int], op: String) throws -> Tensor {
        var out: [T] = uninitializedArray(count: batch * m * n)
        data.withUnsafeBufferPointer { a in
            other.data.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { c in
                    BLAS.gemmBatched(batch: batch, workers: Parallel.workers, transA: transposeA, transB: transposeB, m: m, n: n, k: k,
                                     a: a.baseAddress!, b: b.baseAddress!, c: c.baseAddress!)
                }
            }
        }
        return Tensor.result(out, shape: outShape, op: op, inputs: [self, other]) { [unowned(unsafe) self, unowned(unsafe) other] g in
            let gp = g.baseAddress!
            // C = op(A)·op(B):  d op(A) = dC·op(B)ᵀ,  d op(B) = op(A)ᵀ·dC.
            if self.requiresGrad {
                other.data.withUnsafeBufferPointer { b in
                    self.withGradForOverwrite { ga, acc in
                        if !transposeA {   // dA[m,k] += dC[m,n]·op(B)ᵀ
                            BLAS.gemmBatched(batch: batch, workers: Parallel.workers, transA: false, transB: !transposeB, m: m, n: k, k: n,
                                             a: gp, b: b.baseAddress!, beta: acc ? 1 : 0, c: ga.baseAddress!)
                        } else {           // dA[k,m] += op(B)·dCᵀ
                            BLAS.gemmBatched(batch: batch, workers: Parallel.workers, transA: transposeB, transB: true, m: k, n: m, k: n,
                                             a: b.baseAddress!, b: gp, beta: acc ? 1 : 0, c: ga.baseAddress!)
                        }
                    }
                }
            }
            if other.requiresGrad {
                self.data.withUnsafeBufferPointer { a in
                    other.withGradForOverwrite { gb, acc in
                        if !transposeB {   // dB[k,n] += op(A)ᵀ·dC
                            BLAS.gemmBatched(batch: batch, workers: Parallel.workers, transA: !transposeA, transB: false, m: k, n: n, k: m,
                                             a: a.baseAddress!, b: gp, beta: acc ? 1 : 0, c: gb.baseAddress!)
                        } else {           // dB[n,k] += dCᵀ·op(A)
                            BLAS.gemmBatched(batch: batch, workers: Parallel.workers, transA: true, transB: transposeA, m: n, n: k, k: m,
                                             a: gp, b: a.baseAddress!, beta: acc ? 1 : 0, c: gb.baseAddress!)
                        }
                    }
                }
            }
        }
    }

    /// The affine map x·W + b over the last axis: x [..., in], W [in, out], b [out] → [..., out].
    /// One BLAS call forward (bias preloaded into C), two backward plus a column sum for b.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func linear(weight: Tensor, bias: Tensor?) throws -> Tensor {
        guard rank >= 1, weight.rank == 2, shape[rank - 1] == weight.shape[0] else {
            throw TensorError("linear", "input \(shape) does not match weight \(weight.shape) (want [..., in] and [in, out])")
        }
        let inF = weight.shape[0], outF = weight.shape[1]
        if let bias, bias.shape != [outF] {
            throw TensorError("linear", "bias shape \(bias.shape) should be [\(outF)] for weight \(weight.shape)")
        }
        let rows = count / max(inF, 1)
        var out: [T] = uninitializedArray(count: rows * outF)
        out.withUnsafeMutableBufferPointer { c in
            if let bias {
                bias.data.withUnsafeBufferPointer { bp in
                    let cs = SharedPointer(c.baseAddress!), b0 = bp.baseAddress!
                    Parallel.forRanges(rows, grain: 256) { r in
                        for i in r { (cs.base + i * outF).update(from: b0, count: outF) }
                    }
                }
            }
            data.withUnsafeBufferPointer { x in
                weight.data.withUnsafeBufferPointer { w in
                    Parallel.gemm(m: rows, n: outF, k: inF, a: x.baseAddress!, b: w.baseAddress!,
                              beta: bias == nil ? 0 : 1, c: c.baseAddress!)
                }
            }
        }
        let inputs = bias.map { [self, weight, $0] } ?? [self, weight]
        return Tensor.result(out, shape: Array(shape.dropLast()) + [outF], op: "linear", inputs: inputs) {
            [unowned(unsafe) self, unowned(unsafe) weight] g in
            let gp = g.baseAddress!
            if self.requiresGrad {     // dX[rows,in] += dY[rows,out]·Wᵀ
                weight.data.withUnsafeBufferPointer { w in
                    self.withGradForOverwrite { gx, acc in
                        Parallel.gemm(transB: true, m: rows, n: inF, k: outF, a: gp, b: w.baseAddress!, beta: acc ? 1 : 0, c: gx.baseAddress!)
                    }
                }
            }
            if weight.requiresGrad {   // dW[in,out] += Xᵀ·dY
                self.data.withUnsafeBufferPointer { x in
                    weight.withGradForOverwrite { gw, acc in
                        Parallel.gemm(transA: true, m: inF, n: outF, k: rows, a: x.baseAddress!, b: gp, beta: acc ? 1 : 0, c: gw.baseAddress!)
                    }
                }
            }
            if let bias, bias.requiresGrad {
                bias.withGrad { gb in columnSums(gp, rows: rows, cols: outF, into: gb.baseAddress!) }
            }
        }
    }
}

/// into[j] += Σ_i m[i, j]. Columns are split among workers; each column is summed over rows in
/// order, so the result does not depend on the worker count.
@_specialize(where T == Float)
@_specialize(where T == Double)
func columnSums<T: Scalar>(_ m: UnsafePointer<T>, rows: Int, cols: Int, into: UnsafeMutablePointer<T>) {
    let dst = SharedPointer(into)
    let blocks = (cols + 63) / 64
    Parallel.forRanges(blocks, grain: rows * 64 >= 1 << 16 ? 1 : blocks) { br in
        let lo = br.lowerBound * 64, hi = min(cols, br.upperBound * 64)
        for i in 0..<rows {
            let row = m + i * cols
            for j in lo..<hi { dst.base[j] += row[j] }
        }
    }
}
