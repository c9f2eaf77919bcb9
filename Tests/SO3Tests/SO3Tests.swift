import XCTest

final class SO3PlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
