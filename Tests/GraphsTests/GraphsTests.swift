import XCTest

final class GraphsPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
