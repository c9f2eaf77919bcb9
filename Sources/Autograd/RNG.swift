// RNG.swift: the engine's own seeded random numbers, so results are identical on every platform
// and Swift version (the standard library's generators are neither seedable nor stable).
// SplitMix64 (Steele, Lea & Flood 2014): state += 0x9E3779B97F4A7C15, output = mix(state).
// Counter-based use (dropout): value i of stream `seed` is mix(seed ⊕ golden·(i+1)), so any thread
// can draw any element without shared state and results do not depend on thread count.

public struct SplitMix64: RandomNumberGenerator {
    public private(set) var state: UInt64
    public init(seed: UInt64) { state = seed }

    static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    @inline(__always)
    public static func mix(_ z0: UInt64) -> UInt64 {
        var z = z0
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        state &+= SplitMix64.golden
        return SplitMix64.mix(state)
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func nextUnit() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal by Box–Muller (one value per call; the pair's partner is discarded so the
    /// stream position is a simple function of calls made).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextUnit(), 0x1.0p-60), u2 = nextUnit()
        return (-2 * Double.log(u1)).squareRoot() * Double.cos(2 * Double.pi * u2)
    }

    /// Element `index` of the counter-based stream `seed`, uniform in [0, 1) with 24 bits (enough
    /// for dropout masks and cheap to turn into Float exactly).
    @inline(__always)
    public static func unit24(seed: UInt64, index: Int) -> Float {
        Float(mix(seed ^ (golden &* UInt64(truncatingIfNeeded: index &+ 1))) >> 40) * 0x1.0p-24
    }

    /// A stable 64-bit hash of a string (FNV-1a), used to give each named parameter its own stream.
    public static func hash(_ s: String) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        return h
    }
}
