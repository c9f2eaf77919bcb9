// The one formatter for error messages users read. HarmoSE's own errors already name file, field
// and reason (their `description`); Foundation's file errors do not (they print as
// `Error Domain=NSCocoaErrorDomain Code=640 "(null)" UserInfo={…}`), so they are translated here
// into "PATH: reason" with the cause spelled out (disk full, read-only file system, not a
// folder, permission denied, …). Every command's last word and every wrapped
// `error.localizedDescription` goes through `ErrorText.describe`.
import Foundation

public enum ErrorText {
    /// "FILE[: FIELD]: REASON" for any error.
    public static func describe(_ error: Error) -> String {
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain || error is CocoaError || error is POSIXError {
            return describeFoundation(ns)
        }
        return String(describing: error)
    }

    /// The reason alone (no path), for messages that name the file themselves.
    public static func reason(of error: Error) -> String {
        let ns = error as NSError
        if ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain || error is CocoaError || error is POSIXError {
            let text = describeFoundation(ns)
            if let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path ?? (ns.userInfo["NSDestinationFilePath"] as? String),
               text.hasPrefix(path + ": ") {
                return String(text.dropFirst(path.count + 2))
            }
            return text
        }
        return describe(error)
    }

    /// The reason of an errno value, in words users act on.
    public static func reason(errno code: Int32) -> String {
        switch code {
        case ENOSPC: return "no space left on the device (disk full)"
        case EDQUOT: return "disk quota exceeded"
        case EROFS: return "read-only file system"
        case EACCES, EPERM: return "permission denied"
        case ENOTDIR: return "a part of the path is not a folder"
        case EISDIR: return "is a folder, not a file"
        case ENOENT: return "no such file or folder"
        case EEXIST: return "already exists"
        case ENAMETOOLONG: return "file name too long"
        case EIO: return "input/output error (failing disk or lost network mount?)"
        case EMFILE, ENFILE: return "too many open files"
        case ENOTEMPTY: return "folder not empty"
        case EXDEV: return "cannot move across file systems"
        default: return String(cString: strerror(code))
        }
    }

    static func describeFoundation(_ ns: NSError) -> String {
        let path = (ns.userInfo[NSFilePathErrorKey] as? String)
            ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
            ?? (ns.userInfo["NSDestinationFilePath"] as? String)
        var code: Int32?
        if ns.domain == NSPOSIXErrorDomain { code = Int32(ns.code) }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            code = Int32(underlying.code)
        }
        let reason: String
        if let code {
            reason = self.reason(errno: code)
        } else {
            switch CocoaError.Code(rawValue: ns.code) {
            case .fileWriteOutOfSpace: reason = "no space left on the device (disk full)"
            case .fileWriteVolumeReadOnly: reason = "read-only file system"
            case .fileWriteNoPermission: reason = "permission denied (cannot write)"
            case .fileReadNoPermission: reason = "permission denied (cannot read)"
            case .fileNoSuchFile, .fileReadNoSuchFile: reason = "no such file or folder"
            case .fileWriteFileExists: reason = "already exists"
            case .fileReadCorruptFile: reason = "unreadable or corrupt"
            case .fileReadTooLarge: reason = "too large to read"
            case .fileReadInapplicableStringEncoding: reason = "not text in the expected encoding (UTF-8)"
            case .fileWriteInvalidFileName: reason = "invalid file name"
            case .fileReadUnknown: reason = "cannot read"
            case .fileWriteUnknown: reason = "cannot write"
            default: reason = "file operation failed (code \(ns.code))"
            }
        }
        return path.map { "\($0): \(reason)" } ?? reason
    }
}
