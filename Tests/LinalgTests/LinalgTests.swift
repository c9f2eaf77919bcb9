import XCTest

final class LinalgPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
