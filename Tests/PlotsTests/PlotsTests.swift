import XCTest

final class PlotsPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
