import XCTest

final class BandsPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
