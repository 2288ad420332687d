// Seeded random numbers: SplitMix64 to seed, xoshiro256** to draw. Passed inout, never global.
import Foundation

public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

public struct Xoshiro256: RandomNumberGenerator, Sendable, Codable {
    public var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var mixer = SplitMix64(seed: seed)
        s = (mixer.next(), mixer.next(), mixer.next(), mixer.next())
    }

    /// A generator for one purpose of one run: (seed, stream, index) map to independent sequences.
    public init(seed: UInt64, stream: UInt64, index: UInt64 = 0) {
        var mixer = SplitMix64(seed: seed ^ (stream &* 0xD1B5_4A32_D192_ED03) ^ (index &* 0x8CB9_2BA7_2F3D_8DD7))
        _ = mixer.next()
        self.init(seed: mixer.next())
    }

    public init(state: [UInt64]) { s = (state[0], state[1], state[2], state[3]) }
    public var stateWords: [UInt64] { [s.0, s.1, s.2, s.3] }

    public init(from decoder: Decoder) throws { self.init(state: try [UInt64](from: decoder)) }
    public func encode(to encoder: Encoder) throws { try stateWords.encode(to: encoder) }

    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always)
    public mutating func nextUnit() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with double precision.
    @inline(__always)
    public mutating func nextDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// Standard normal (Box-Muller).
    public mutating func nextNormal() -> Double {
        let u1 = max(nextDouble(), 1e-300)
        let u2 = nextDouble()
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }

    public mutating func nextInt(below bound: Int) -> Int { Int(next() % UInt64(bound)) }
}
