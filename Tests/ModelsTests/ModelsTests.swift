import XCTest

final class ModelsPlaceholderTests: XCTestCase {
    func testPlaceholder() {}
}
