// NeuralOps.swift: layer normalisation, seeded dropout, and radial basis functions of interatomic
// distance (Gaussian and Bessel) with a smooth polynomial cutoff envelope.

extension Tensor {
    /// Normalises over the last axis, then scales by `gamma` and shifts by `beta` (both [D]).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func layerNorm(gamma: Tensor?, beta: Tensor?, epsilon: T = 1e-5) throws -> Tensor {
        guard rank >= 1 else { throw TensorError("layerNorm", "needs rank ≥ 1") }
        let d = shape[rank - 1], rows = count / max(d, 1)
        for (p, label) in [(gamma, "gamma"), (beta, "beta")] {
            if let p, p.shape != [d] { throw TensorError("layerNorm", "\(label) shape \(p.shape) should be [\(d)] for input \(shape)") }
        }
        var out: [T] = uninitializedArray(count: count)
        var xhat: [T] = uninitializedArray(count: count)
        var rstd = [T](repeating: 0, count: rows)
        let ones = [T](repeating: 1, count: d), zeros = [T](repeating: 0, count: d)
        let g = gamma?.data ?? ones, b = beta?.data ?? zeros
        data.withUnsafeBufferPointer { x in
          out.withUnsafeMutableBufferPointer { ob in
            xhat.withUnsafeMutableBufferPointer { hb in
              rstd.withUnsafeMutableBufferPointer { rb in
                let xp = x.baseAddress!
                let yp = SharedPointer(ob.baseAddress!), hp = SharedPointer(hb.baseAddress!), rp = SharedPointer(rb.baseAddress!)
                Parallel.forRanges(rows, grain: max(1, 8192 / max(d, 1))) { r in
                    for i in r {
                        let row = xp + i * d
                        var mean: T = 0
                        for j in 0..<d { mean += row[j] }
                        mean /= T(d)
                        var v: T = 0
                        for j in 0..<d { let c = row[j] - mean; v += c * c }
                        let s = 1 / (v / T(d) + epsilon).squareRoot()
                        rp.base[i] = s
                        for j in 0..<d {
                            let h = (row[j] - mean) * s
                            hp.base[i * d + j] = h
                            yp.base[i * d + j] = h * g[j] + b[j]
                        }
                    }
                }
              }
            }
          }
        }
        let inputs = [self] + [gamma, beta].compactMap { $0 }
        return Tensor.result(out, shape: shape, op: "layerNorm", inputs: inputs) { [unowned(unsafe) self] gy in
            let gyp = gy.baseAddress!
            if self.requiresGrad {
                // dx = rstd·(dĥ − mean(dĥ) − ĥ·mean(dĥ·ĥ)),  dĥ = dy·γ
                self.withGrad { gx in
                    let gxp = SharedPointer(gx.baseAddress!)
                    Parallel.forRanges(rows, grain: max(1, 8192 / max(d, 1))) { r in
                        for i in r {
                            var m1: T = 0, m2: T = 0
                            for j in 0..<d { let dh = gyp[i * d + j] * g[j]; m1 += dh; m2 += dh * xhat[i * d + j] }
                            m1 /= T(d); m2 /= T(d)
                            for j in 0..<d {
                                let dh = gyp[i * d + j] * g[j]
                                gxp.base[i * d + j] += rstd[i] * (dh - m1 - xhat[i * d + j] * m2)
                            }
                        }
                    }
                }
            }
            if let gamma, gamma.requiresGrad {
                var prod = [T](repeating: 0, count: xhat.count)
                for i in 0..<prod.count { prod[i] = gyp[i] * xhat[i] }
                gamma.withGrad { gg in prod.withUnsafeBufferPointer { columnSums($0.baseAddress!, rows: rows, cols: d, into: gg.baseAddress!) } }
            }
            if let beta, beta.requiresGrad {
                beta.withGrad { gb in columnSums(gyp, rows: rows, cols: d, into: gb.baseAddress!) }
            }
        }
    }

    /// Inverted dropout: zeroes each value with probability `p` and scales survivors by 1/(1−p).
    /// Element i is kept iff unit24(seed, i) ≥ p, so the mask depends only on (seed, position) —
    /// never on threads. Derive `seed` from (run seed, step, layer) to resume runs exactly.
    /// Identity when `training` is false or p == 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func dropout(probability p: Double, seed: UInt64, training: Bool = true) throws -> Tensor {
        guard p >= 0 && p < 1 else { throw TensorError("dropout", "probability \(p) outside [0, 1)") }
        if !training || p == 0 { return self }
        let scale = T(1 / (1 - p)), threshold = Float(p)
        var mask: [T] = uninitializedArray(count: count)
        mask.withUnsafeMutableBufferPointer { mb in
            let mp = SharedPointer(mb.baseAddress!)
            Parallel.forRanges(mb.count, grain: 1 << 14) { r in
                for i in r { mp.base[i] = SplitMix64.unit24(seed: seed, index: i) >= threshold ? scale : 0 }
            }
        }
        var out = data
        for i in 0..<out.count { out[i] *= mask[i] }
        return Tensor.result(out, shape: shape, op: "dropout", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGrad { gx in for i in 0..<gx.count { gx[i] += g[i] * mask[i] } }
        }
    }
}

/// Radial bases of distances r [E] → [E, K], differentiable in r.
public enum RadialBasis {
    /// exp(−(r − μ_k)² / (2 w²)) with K centres μ_k evenly spaced on [start, stop] and width w
    /// (default: the spacing), as in SchNet / DeepH-E3's GaussianBasis.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func gaussian<T: Scalar>(_ r: Tensor<T>, count k: Int, start: Double = 0, stop: Double, width: Double? = nil) throws -> Tensor<T> {
        guard r.rank == 1 else { throw TensorError("gaussianBasis", "distances should be 1-D [E], got \(r.shape)") }
        guard k >= 1, stop > start else { throw TensorError("gaussianBasis", "need count ≥ 1 and stop > start (count \(k), [\(start), \(stop)])") }
        let spacing = k > 1 ? (stop - start) / Double(k - 1) : (stop - start)
        let w = width ?? spacing
        guard w > 0 else { throw TensorError("gaussianBasis", "width must be positive, got \(w)") }
        let gamma = T(1 / (2 * w * w))
        let mu = (0..<k).map { T(start + Double($0) * spacing) }
        let e = r.count
        var out = [T](repeating: 0, count: e * k)
        for i in 0..<e { for j in 0..<k { let d = r.data[i] - mu[j]; out[i * k + j] = T.exp(-gamma * d * d) } }
        return Tensor.result(out, shape: [e, k], op: "gaussianBasis", inputs: [r]) { g in
            r.withGrad { gr in
                for i in 0..<e { var s: T = 0; for j in 0..<k { s += g[i * k + j] * out[i * k + j] * (-2 * gamma * (r.data[i] - mu[j])) }; gr[i] += s }
            }
        }
    }

    /// sqrt(2/c)·sin(nπr/c)/r for n = 1…K (DimeNet's spherical Bessel j₀ basis). r must be > 0.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func bessel<T: Scalar>(_ r: Tensor<T>, count k: Int, cutoff c: Double) throws -> Tensor<T> {
        guard r.rank == 1 else { throw TensorError("besselBasis", "distances should be 1-D [E], got \(r.shape)") }
        guard k >= 1, c > 0 else { throw TensorError("besselBasis", "need count ≥ 1 and cutoff > 0 (count \(k), cutoff \(c))") }
        if let bad = r.data.firstIndex(where: { !($0 > 0) }) {
            throw TensorError("besselBasis", "distance \(r.data[bad]) at position \(bad) is not positive")
        }
        let norm = T((2 / c).squareRoot()), freq = (1...k).map { T(Double($0) * Double.pi / c) }
        let e = r.count
        var out = [T](repeating: 0, count: e * k)
        for i in 0..<e { let x = r.data[i]; for j in 0..<k { out[i * k + j] = norm * T.sin(freq[j] * x) / x } }
        return Tensor.result(out, shape: [e, k], op: "besselBasis", inputs: [r]) { g in
            r.withGrad { gr in
                for i in 0..<e {
                    let x = r.data[i]
                    var s: T = 0
                    for j in 0..<k { s += g[i * k + j] * norm * (freq[j] * T.cos(freq[j] * x) / x - T.sin(freq[j] * x) / (x * x)) }
                    gr[i] += s
                }
            }
        }
    }

    /// Smooth cutoff u(r/c) = 1 − (p+1)(p+2)/2·dᵖ + p(p+2)·dᵖ⁺¹ − p(p+1)/2·dᵖ⁺², 0 beyond c
    /// (DimeNet's polynomial envelope): u(0)=1 and u, u′, u″ vanish at the cutoff. r [E] → [E].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func cutoffEnvelope<T: Scalar>(_ r: Tensor<T>, cutoff c: Double, exponent p: Int = 6) throws -> Tensor<T> {
        guard r.rank == 1 else { throw TensorError("cutoffEnvelope", "distances should be 1-D [E], got \(r.shape)") }
        guard c > 0, p >= 1 else { throw TensorError("cutoffEnvelope", "need cutoff > 0 and exponent ≥ 1 (cutoff \(c), exponent \(p))") }
        let a = T(Double((p + 1) * (p + 2)) / 2), b = T(Double(p * (p + 2))), cc = T(Double(p * (p + 1)) / 2)
        let inv = T(1 / c), pf = T(p)
        func pow(_ x: T, _ n: Int) -> T { var y: T = 1; for _ in 0..<n { y *= x }; return y }
        let out = r.data.map { x -> T in
            let d = x * inv
            return d < 1 ? 1 - a * pow(d, p) + b * pow(d, p + 1) - cc * pow(d, p + 2) : 0
        }
        return Tensor.result(out, shape: r.shape, op: "cutoffEnvelope", inputs: [r]) { g in
            r.withGrad { gr in
                for i in 0..<gr.count {
                    let d = r.data[i] * inv
                    guard d < 1 else { continue }
                    let du = -a * pf * pow(d, p - 1) + b * (pf + 1) * pow(d, p) - cc * (pf + 2) * pow(d, p + 1)
                    gr[i] += g[i] * du * inv
                }
            }
        }
    }
}
