/// Lowercase hex of bytes, as Ray prints IDs (a table, not `String(format:)`: a 10,000-task
/// listing formats a million bytes).
public enum Hex {
    public static func string(_ bytes: some Collection<UInt8>) -> String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            digits.withUTF8Buffer { table in
                var at = 0
                for byte in bytes {
                    out[at] = table[Int(byte >> 4)]
                    out[at + 1] = table[Int(byte & 0x0f)]
                    at += 2
                }
                return at
            }
        }
    }
}
