import Foundation
import Autograd
@testable import SO3
import Structures

/// SplitMix64: a tiny seeded generator so every test run draws the same rotations.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func rotation() -> Rotation { Rotation(uniform: uniform(), uniform(), uniform()) }
    mutating func vector() -> Vec3 { Vec3(uniform() * 2 - 1, uniform() * 2 - 1, uniform() * 2 - 1) }
    mutating func values(_ n: Int) -> [Double] { (0 ..< n).map { _ in uniform() * 2 - 1 } }
}

/// Row-major products on small dense matrices.
func matmul(_ a: [Double], _ b: [Double], _ n: Int, _ k: Int, _ m: Int) -> [Double] {
    var c = [Double](repeating: 0, count: n * m)
    for i in 0 ..< n { for p in 0 ..< k { let x = a[i * k + p]; if x == 0 { continue }
        for j in 0 ..< m { c[i * m + j] += x * b[p * m + j] } } }
    return c
}

func matvec(_ a: [Double], _ v: [Double]) -> [Double] {
    let n = a.count / v.count
    return matmul(a, v, n, v.count, 1)
}

func transpose(_ a: [Double], _ n: Int, _ m: Int) -> [Double] {
    var t = [Double](repeating: 0, count: n * m)
    for i in 0 ..< n { for j in 0 ..< m { t[j * n + i] = a[i * m + j] } }
    return t
}

func identity(_ n: Int) -> [Double] {
    var e = [Double](repeating: 0, count: n * n)
    for i in 0 ..< n { e[i * n + i] = 1 }
    return e
}

/// Kronecker product of row-major square matrices.
func kron(_ a: [Double], _ na: Int, _ b: [Double], _ nb: Int) -> [Double] {
    let n = na * nb
    var k = [Double](repeating: 0, count: n * n)
    for i in 0 ..< na { for j in 0 ..< na { let x = a[i * na + j]; if x == 0 { continue }
        for p in 0 ..< nb { for q in 0 ..< nb { k[(i * nb + p) * n + j * nb + q] = x * b[p * nb + q] } } } }
    return k
}

/// Features rotated by D(R) of their irreps (the expected output of an equivariant map).
func rotated<T: Scalar>(_ t: Tensor<T>, _ irreps: Irreps, _ r: Rotation) throws -> Tensor<T> {
    var d = t.data
    try irreps.rotate(&d, rotation: r)
    return try Tensor<T>(d, shape: t.shape)
}

/// ‖a − b‖ / ‖b‖ over all elements.
func relativeError<T: Scalar>(_ a: Tensor<T>, _ b: Tensor<T>) -> Double {
    let num = zip(a.data, b.data).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
    let den = b.data.map { Double($0) * Double($0) }.reduce(0, +).squareRoot()
    return num / max(den, 1e-300)
}
