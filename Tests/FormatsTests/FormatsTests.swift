import XCTest

final class FormatsPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
