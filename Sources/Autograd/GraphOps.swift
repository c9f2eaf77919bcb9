// GraphOps.swift: message-passing primitives — gather rows by index, scatter-add (index_add) and
// segment sum/mean/max/softmax over edges grouped by destination node. A `RowIndex` validates the
// indices once and sorts edges by row (counting sort, stable), so every reduction gives each
// destination row to one worker that sums its edges in edge order: parallel and deterministic.

/// Validated indices e ↦ row[e] into a tensor of `rowCount` rows, with edges grouped by row.
public struct RowIndex: Sendable {
    public let indices: [Int]
    public let rowCount: Int
    /// Edges of row r are order[starts[r] ..< starts[r + 1]], ascending.
    let starts: [Int]
    let order: [Int]

    public init(_ indices: [Int], rowCount: Int) throws {
        guard rowCount >= 0 else { throw TensorError("RowIndex", "negative row count \(rowCount)") }
        var starts = [Int](repeating: 0, count: rowCount + 1)
        for (e, r) in indices.enumerated() {
            guard r >= 0 && r < rowCount else {
                throw TensorError("RowIndex", "index \(r) at position \(e) is outside 0..<\(rowCount)")
            }
            starts[r + 1] += 1
        }
        for r in 0..<rowCount { starts[r + 1] += starts[r] }
        var fill = starts
        var order = [Int](repeating: 0, count: indices.count)
        for (e, r) in indices.enumerated() { order[fill[r]] = e; fill[r] += 1 }
        self.indices = indices; self.rowCount = rowCount; self.starts = starts; self.order = order
    }

    public var count: Int { indices.count }
    /// Number of edges that point at each row.
    public var rowSizes: [Int] { (0..<rowCount).map { starts[$0 + 1] - starts[$0] } }
}

/// dst[e] (+)= src[index[e]] for rows of `width` values, parallel over e.
@_specialize(where T == Float)
@_specialize(where T == Double)
func gatherRowsKernel<T: Scalar>(_ src: UnsafePointer<T>, width: Int, index: RowIndex, into dst: UnsafeMutablePointer<T>, accumulate: Bool) {
    let d = SharedPointer(dst)
    index.indices.withUnsafeBufferPointer { idx in
        Parallel.forRanges(idx.count, grain: max(1, 8192 / max(width, 1))) { r in
            for e in r {
                let s = src + idx[e] * width, t = d.base + e * width
                if accumulate { for j in 0..<width { t[j] += s[j] } } else { t.update(from: s, count: width) }
            }
        }
    }
}

/// dst[r] += Σ_{e: index[e] = r} src[e], parallel over rows, edges summed in order.
@_specialize(where T == Float)
@_specialize(where T == Double)
func scatterAddKernel<T: Scalar>(_ src: UnsafePointer<T>, width: Int, index: RowIndex, into dst: UnsafeMutablePointer<T>) {
    let d = SharedPointer(dst)
    index.starts.withUnsafeBufferPointer { starts in
        index.order.withUnsafeBufferPointer { order in
            Parallel.forRanges(index.rowCount, grain: max(1, 8192 / max(width, 1))) { r in
                for row in r {
                    let t = d.base + row * width
                    for k in starts[row]..<starts[row + 1] {
                        let s = src + order[k] * width
                        for j in 0..<width { t[j] += s[j] }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// Width of one row: the product of all axes after the first.
    var rowWidth: Int { shape.dropFirst().reduce(1, *) }

    /// Rows of self picked by `index`: self [rowCount, ...] → [index.count, ...].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func gatherRows(_ index: RowIndex) throws -> Tensor {
        guard rank >= 1, shape[0] == index.rowCount else {
            throw TensorError("gatherRows", "tensor \(shape) has \(rank >= 1 ? shape[0] : 0) rows but the index addresses \(index.rowCount)")
        }
        let w = rowWidth
        var out: [T] = uninitializedArray(count: index.count * w)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { gatherRowsKernel(x.baseAddress!, width: w, index: index, into: $0.baseAddress!, accumulate: false) }
        }
        return Tensor.result(out, shape: [index.count] + shape.dropFirst(), op: "gatherRows", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGrad { scatterAddKernel(g.baseAddress!, width: w, index: index, into: $0.baseAddress!) }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func gatherRows(_ indices: [Int]) throws -> Tensor {
        try gatherRows(RowIndex(indices, rowCount: rank >= 1 ? shape[0] : 0))
    }

    /// index_add: row e of self is added into row index[e] of a zero tensor with index.rowCount
    /// rows. self [E, ...] → [rowCount, ...]. The same as segmentSum.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func scatterAdd(_ index: RowIndex) throws -> Tensor {
        try checkEdges(index, op: "scatterAdd")
        let w = rowWidth
        var out = [T](repeating: 0, count: index.rowCount * w)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { scatterAddKernel(x.baseAddress!, width: w, index: index, into: $0.baseAddress!) }
        }
        return Tensor.result(out, shape: [index.rowCount] + shape.dropFirst(), op: "scatterAdd", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGradForOverwrite { gatherRowsKernel(g.baseAddress!, width: w, index: index, into: $0.baseAddress!, accumulate: $1) }
        }
    }

    @_specialize(where T == Float)
    @_specialize(where T == Double)
    func checkEdges(_ index: RowIndex, op: String) throws {
        guard rank >= 1, shape[0] == index.count else {
            throw TensorError(op, "tensor \(shape) should have one row per edge (\(index.count) edges)")
        }
    }

    /// Σ over the edges of each destination row: [E, ...] → [rowCount, ...].
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func segmentSum(_ index: RowIndex) throws -> Tensor {
        try checkEdges(index, op: "segmentSum")
        return try scatterAdd(index)
    }

    /// Mean over the edges of each destination row (0 for rows without edges).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func segmentMean(_ index: RowIndex) throws -> Tensor {
        try checkEdges(index, op: "segmentMean")
        let w = rowWidth
        let inv = index.rowSizes.map { $0 == 0 ? T(0) : 1 / T($0) }
        var out = [T](repeating: 0, count: index.rowCount * w)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                scatterAddKernel(x.baseAddress!, width: w, index: index, into: y.baseAddress!)
                for r in 0..<index.rowCount { for j in 0..<w { y[r * w + j] *= inv[r] } }
            }
        }
        return Tensor.result(out, shape: [index.rowCount] + shape.dropFirst(), op: "segmentMean", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGrad { gx in
                for e in 0..<index.count {
                    let r = index.indices[e], s = inv[r]
                    for j in 0..<w { gx[e * w + j] += g[r * w + j] * s }
                }
            }
        }
    }

    /// Maximum over the edges of each destination row, per feature (0 for rows without edges).
    /// The gradient flows to the first edge attaining the maximum.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func segmentMax(_ index: RowIndex) throws -> Tensor {
        try checkEdges(index, op: "segmentMax")
        let w = rowWidth
        var out = [T](repeating: 0, count: index.rowCount * w)
        var argmax = [Int](repeating: -1, count: index.rowCount * w)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                argmax.withUnsafeMutableBufferPointer { am in
                    let yp = SharedPointer(y.baseAddress!), ap = SharedPointer(am.baseAddress!), xp = x.baseAddress!
                    Parallel.forRanges(index.rowCount, grain: max(1, 4096 / max(w, 1))) { rr in
                        for r in rr {
                            for k in index.starts[r]..<index.starts[r + 1] {
                                let e = index.order[k]
                                for j in 0..<w {
                                    let v = xp[e * w + j]
                                    if ap.base[r * w + j] < 0 || v > yp.base[r * w + j] { yp.base[r * w + j] = v; ap.base[r * w + j] = e }
                                }
                            }
                        }
                    }
                }
            }
        }
        return Tensor.result(out, shape: [index.rowCount] + shape.dropFirst(), op: "segmentMax", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGrad { gx in
                for i in 0..<argmax.count where argmax[i] >= 0 { gx[argmax[i] * w + i % w] += g[i] }
            }
        }
    }

    /// Softmax over the edges of each destination row, per feature: [E, ...] → [E, ...] (the
    /// attention weights of a graph transformer). Max-subtracted for stability.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func segmentSoftmax(_ index: RowIndex) throws -> Tensor {
        try checkEdges(index, op: "segmentSoftmax")
        let w = rowWidth
        var out: [T] = uninitializedArray(count: count)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                let yp = SharedPointer(y.baseAddress!), xp = x.baseAddress!
                Parallel.forRanges(index.rowCount, grain: max(1, 2048 / max(w, 1))) { rr in
                    var m = [T](repeating: 0, count: w), s = [T](repeating: 0, count: w)
                    for r in rr {
                        let lo = index.starts[r], hi = index.starts[r + 1]
                        if lo == hi { continue }
                        for j in 0..<w { m[j] = -T.infinity; s[j] = 0 }
                        for k in lo..<hi { let e = index.order[k]; for j in 0..<w { m[j] = Swift.max(m[j], xp[e * w + j]) } }
                        for k in lo..<hi {
                            let e = index.order[k]
                            for j in 0..<w { let v = T.exp(xp[e * w + j] - m[j]); yp.base[e * w + j] = v; s[j] += v }
                        }
                        for k in lo..<hi { let e = index.order[k]; for j in 0..<w { yp.base[e * w + j] /= s[j] } }
                    }
                }
            }
        }
        return Tensor.result(out, shape: shape, op: "segmentSoftmax", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            // dx_e = y_e·(g_e − Σ_{e' in row} g_e'·y_e')
            out.withUnsafeBufferPointer { y in
                self.withGrad { gx in
                    let gxp = SharedPointer(gx.baseAddress!), yp = y.baseAddress!, gp = g.baseAddress!
                    Parallel.forRanges(index.rowCount, grain: max(1, 2048 / max(w, 1))) { rr in
                        var dot = [T](repeating: 0, count: w)
                        for r in rr {
                            let lo = index.starts[r], hi = index.starts[r + 1]
                            for j in 0..<w { dot[j] = 0 }
                            for k in lo..<hi { let e = index.order[k]; for j in 0..<w { dot[j] += gp[e * w + j] * yp[e * w + j] } }
                            for k in lo..<hi {
                                let e = index.order[k]
                                for j in 0..<w { gxp.base[e * w + j] += yp[e * w + j] * (gp[e * w + j] - dot[j]) }
                            }
                        }
                    }
                }
            }
        }
    }
}
