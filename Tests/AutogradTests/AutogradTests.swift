import XCTest

final class AutogradPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
