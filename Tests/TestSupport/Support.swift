// Test helpers shared by every test file: tolerance checks that point at the caller, a central-difference
// gradient check in Double that reports its worst difference, and seeded data.
import DeepClustering
import XCTest

/// Asserts |a - b| <= absolute + relative * |b|, reporting at the caller's line.
public func assertClose(_ a: Double, _ b: Double, relative: Double = 1e-5, absolute: Double = 1e-7,
                        _ message: String = "", file: StaticString = #filePath, line: UInt = #line) {
    XCTAssert(abs(a - b) <= absolute + relative * abs(b), "\(a) vs \(b) \(message)", file: file, line: line)
}

/// Compares an analytic gradient with central differences of `loss` at `x` (perturbing each coordinate by `h`).
/// Returns the worst relative error max |g - fd| / max(|fd|, floor), and prints it.
@discardableResult
public func gradientCheck(name: String, x: [Double], analytic: [Double], h: Double = 1e-5, floor: Double = 1e-3,
                          tolerance: Double = 1e-4, file: StaticString = #filePath, line: UInt = #line,
                          loss: ([Double]) -> Double) -> Double {
    precondition(x.count == analytic.count)
    var worst = 0.0
    var probe = x
    for i in 0..<x.count {
        probe[i] = x[i] + h
        let up = loss(probe)
        probe[i] = x[i] - h
        let down = loss(probe)
        probe[i] = x[i]
        let numeric = (up - down) / (2 * h)
        worst = max(worst, abs(numeric - analytic[i]) / max(abs(numeric), floor))
    }
    print("gradient check \(name): worst relative difference \(worst) over \(x.count) coordinates")
    XCTAssertLessThan(worst, tolerance, "gradient check \(name)", file: file, line: line)
    return worst
}

/// Seeded uniform values in [-scale, scale].
public func seededValues(_ count: Int, seed: UInt64, scale: Double = 1) -> [Double] {
    var rng = Xoshiro256(seed: seed)
    return (0..<count).map { _ in (2 * rng.nextDouble() - 1) * scale }
}
