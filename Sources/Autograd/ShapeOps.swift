// ShapeOps.swift: reshape, permute/transpose, concat, slice, and sums/means over axes.

extension Tensor {
    /// Same values, new shape (one dimension may be -1 and is inferred).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var dims = newShape
        let unknown = dims.indices.filter { dims[$0] == -1 }
        guard unknown.count <= 1, dims.allSatisfy({ $0 >= -1 }) else {
            throw TensorError("reshape", "shape \(newShape) has more than one -1 or a negative dimension")
        }
        if let u = unknown.first {
            let known = dims.enumerated().filter { $0.offset != u }.map(\.element).reduce(1, *)
            guard known > 0, count % known == 0 else {
                throw TensorError("reshape", "cannot infer -1 in \(newShape) for \(count) values (shape \(shape))")
            }
            dims[u] = count / known
        }
        guard dims.reduce(1, *) == count else {
            throw TensorError("reshape", "shape \(shape) (\(count) values) cannot become \(newShape)")
        }
        return Tensor.result(data, shape: dims, op: "reshape", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            if self.grad == nil { self.grad = Array(g) } else { self.withGrad { gx in for i in 0..<gx.count { gx[i] += g[i] } } }
        }
    }

    /// Axes reordered: result axis i is input axis `axes[i]`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func permuted(_ axes: [Int]) throws -> Tensor {
        // A bit per axis, not two Sets: permute runs hundreds of times per training step.
        var seen: UInt64 = 0
        for a in axes where a >= 0 && a < rank && a < 64 { seen |= 1 << UInt64(a) }
        guard axes.count == rank, rank <= 64, seen.nonzeroBitCount == rank else {
            throw TensorError("permute", "\(axes) is not a permutation of the \(rank) axes of \(shape)")
        }
        let outShape = axes.map { shape[$0] }
        let inStrides = contiguousStrides(shape)
        let gatherStrides = axes.map { inStrides[$0] }   // input offset step per output axis
        var out: [T] = uninitializedArray(count: count)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                let xp = x.baseAddress!, yp = y.baseAddress!
                broadcastWalk(outShape, gatherStrides, gatherStrides) { i, ia, _ in yp[i] = xp[ia] }
            }
        }
        return Tensor.result(out, shape: outShape, op: "permute", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            let gp = g.baseAddress!
            self.withGrad { gx in
                let gxp = gx.baseAddress!
                broadcastWalk(outShape, gatherStrides, gatherStrides) { i, ia, _ in gxp[ia] += gp[i] }
            }
        }
    }

    /// Swaps the last two axes (matrix transpose, batched for rank > 2).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func transposed() throws -> Tensor {
        guard rank >= 2 else { throw TensorError("transpose", "needs rank ≥ 2, got shape \(shape)") }
        var axes = Array(0..<rank)
        axes.swapAt(rank - 1, rank - 2)
        return try permuted(axes)
    }

    /// Joins tensors along `axis`; all other dimensions must agree.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public static func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first else { throw TensorError("concat", "no tensors to join") }
        let ax = try normalizeAxis(axis, rank: first.rank, op: "concat")
        for p in parts where p.rank != first.rank || p.shape.enumerated().contains(where: { $0.offset != ax && $0.element != first.shape[$0.offset] }) {
            throw TensorError("concat", "shape \(p.shape) does not match \(first.shape) outside axis \(ax)")
        }
        let outer = first.shape[..<ax].reduce(1, *)
        let inner = first.shape[(ax + 1)...].reduce(1, *)
        let widths = parts.map { $0.shape[ax] * inner }
        let total = widths.reduce(0, +)
        var outShape = first.shape
        outShape[ax] = parts.map { $0.shape[ax] }.reduce(0, +)
        var out: [T] = uninitializedArray(count: outer * total)
        out.withUnsafeMutableBufferPointer { y in
            var offset = 0
            for (p, w) in zip(parts, widths) {
                p.data.withUnsafeBufferPointer { x in
                    for o in 0..<outer { (y.baseAddress! + o * total + offset).update(from: x.baseAddress! + o * w, count: w) }
                }
                offset += w
            }
        }
        return Tensor.result(out, shape: outShape, op: "concat", inputs: parts) { g in
            var offset = 0
            for (p, w) in zip(parts, widths) {
                if p.requiresGrad {
                    p.withGradForOverwrite { gx, accumulate in
                        for o in 0..<outer {
                            let src = g.baseAddress! + o * total + offset, dst = gx.baseAddress! + o * w
                            if accumulate { for j in 0..<w { dst[j] += src[j] } } else { dst.update(from: src, count: w) }
                        }
                    }
                }
                offset += w
            }
        }
    }

    /// The sub-tensor with indices `range` along `axis`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func slice(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let ax = try normalizeAxis(axis, rank: rank, op: "slice")
        guard range.lowerBound >= 0, range.upperBound <= shape[ax] else {
            throw TensorError("slice", "range \(range) outside 0..<\(shape[ax]) on axis \(ax) of \(shape)")
        }
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let rowIn = shape[ax] * inner, w = range.count * inner, start = range.lowerBound * inner
        var outShape = shape
        outShape[ax] = range.count
        var out: [T] = uninitializedArray(count: outer * w)
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                for o in 0..<outer { (y.baseAddress! + o * w).update(from: x.baseAddress! + o * rowIn + start, count: w) }
            }
        }
        return Tensor.result(out, shape: outShape, op: "slice", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            self.withGrad { gx in
                for o in 0..<outer {
                    let src = g.baseAddress! + o * w, dst = gx.baseAddress! + o * rowIn + start
                    for j in 0..<w { dst[j] += src[j] }
                }
            }
        }
    }

    /// Sum over `axes` (all axes when nil). Reduced axes are kept as size 1 when `keepDims`.
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func sum(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let axesSet = Set(try (axes ?? Array(0..<rank)).map { try normalizeAxis($0, rank: rank, op: "sum") })
        let keptShape = shape.enumerated().map { axesSet.contains($0.offset) ? 1 : $0.element }
        let outShape = keepDims ? keptShape : shape.enumerated().filter { !axesSet.contains($0.offset) }.map(\.element)
        let strides = broadcastStrides(keptShape, to: shape)
        var out = [T](repeating: 0, count: keptShape.reduce(1, *))
        data.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { y in
                reduceSum(x.baseAddress!, shape: shape, keptShape: keptShape, strides: strides, into: y.baseAddress!)
            }
        }
        let fullShape = shape
        return Tensor.result(out, shape: outShape, op: "sum", inputs: [self]) { [unowned(unsafe) self] g in
            guard self.requiresGrad else { return }
            let gp = g.baseAddress!
            self.withGradForOverwrite { gx, accumulate in
                let gxp = gx.baseAddress!
                if accumulate {
                    broadcastWalk(fullShape, strides, strides) { i, j, _ in gxp[i] += gp[j] }
                } else {
                    broadcastWalk(fullShape, strides, strides) { i, j, _ in gxp[i] = gp[j] }
                }
            }
        }
    }

    /// Mean over `axes` (all axes when nil).
    @_specialize(where T == Float)
    @_specialize(where T == Double)
    public func mean(axes: [Int]? = nil, keepDims: Bool = false) throws -> Tensor {
        let s = try sum(axes: axes, keepDims: keepDims)
        let n = max(1, count / max(s.count, 1))
        return s.affine(scale: 1 / T(n))
    }
}

/// y[j] += Σ x[i] over the elements i that map to kept index j. Reductions over trailing axes
/// (the common case) give each output one worker summing a contiguous run; reductions over
/// leading axes sum rows in order. Either way the order is fixed and thread-count independent.
@_specialize(where T == Float)
@_specialize(where T == Double)
func reduceSum<T: Scalar>(_ x: UnsafePointer<T>, shape: [Int], keptShape: [Int], strides: [Int], into y: UnsafeMutablePointer<T>) {
    let n = shape.reduce(1, *), m = keptShape.reduce(1, *)
    if n == 0 { return }
    // Kept axes form a prefix: contiguous runs of length n/m.
    let firstReduced = keptShape.indices.first { keptShape[$0] != shape[$0] } ?? shape.count
    if keptShape[firstReduced...].allSatisfy({ $0 == 1 }) {
        let run = n / m, ys = SharedPointer(y)
        if m == 1 {
            // Total sum: fixed blocks of 4096 summed in order, then block sums in order.
            let block = 4096, blocks = (n + block - 1) / block
            var partial = [T](repeating: 0, count: blocks)
            partial.withUnsafeMutableBufferPointer { pb in
                let pp = SharedPointer(pb.baseAddress!)
                Parallel.forRanges(blocks, grain: 4) { r in
                    for b in r {
                        var s: T = 0
                        for i in (b * block)..<min(n, (b + 1) * block) { s += x[i] }
                        pp.base[b] = s
                    }
                }
            }
            for p in partial { y[0] += p }
            return
        }
        Parallel.forRanges(m, grain: max(1, 4096 / max(run, 1))) { r in
            for j in r {
                var s: T = 0
                let row = x + j * run
                for i in 0..<run { s += row[i] }
                ys.base[j] += s
            }
        }
        return
    }
    // Reduced axes form a prefix: column sums over rows.
    let lastReduced = keptShape.indices.last { keptShape[$0] != shape[$0] }!
    if keptShape[...lastReduced].allSatisfy({ $0 == 1 }) {
        columnSums(x, rows: n / m, cols: m, into: y)
        return
    }
    broadcastWalk(shape, strides, strides) { i, j, _ in y[j] += x[i] }
}
