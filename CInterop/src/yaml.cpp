// YAML to JSON through yaml-cpp. yaml-cpp does not resolve tags, so plain scalars are resolved here
// by YAML 1.2's core schema; quoted scalars (tag "!") and scalars tagged !!str stay strings.
#include <cmath>
#include <cstdlib>
#include <regex>
#include <sstream>
#include <string>

#include <yaml-cpp/yaml.h>

#include "internal.h"

namespace {

struct ConversionError {
    std::string message;
    int line;
    int column;
};

void write_json_string(std::string &out, const std::string &s) {
    out.push_back('"');
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
            if (c < 0x20) {
                char buf[8];
                std::snprintf(buf, sizeof buf, "\\u%04x", c);
                out += buf;
            } else {
                out.push_back(static_cast<char>(c));
            }
        }
    }
    out.push_back('"');
}

bool is_null(const std::string &s) { return s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL"; }

bool is_bool(const std::string &s, bool &value) {
    if (s == "true" || s == "True" || s == "TRUE") { value = true; return true; }
    if (s == "false" || s == "False" || s == "FALSE") { value = false; return true; }
    return false;
}

// Writes the JSON number for a core-schema integer or float; false when s is neither.
bool write_number(std::string &out, const std::string &s) {
    static const std::regex decimal("[-+]?[0-9]+");
    static const std::regex octal("0o[0-7]+");
    static const std::regex hex("0x[0-9a-fA-F]+");
    static const std::regex floating("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
    if (std::regex_match(s, decimal)) {
        size_t start = (s[0] == '+') ? 1 : 0;
        std::string digits = s.substr(start);
        bool negative = !digits.empty() && digits[0] == '-';
        size_t first = negative ? 1 : 0;
        while (first + 1 < digits.size() && digits[first] == '0') first++;  // JSON forbids leading zeros
        out += (negative ? "-" : "") + digits.substr(first);
        return true;
    }
    if (std::regex_match(s, octal)) {
        out += std::to_string(std::strtoull(s.c_str() + 2, nullptr, 8));
        return true;
    }
    if (std::regex_match(s, hex)) {
        out += std::to_string(std::strtoull(s.c_str() + 2, nullptr, 16));
        return true;
    }
    if (std::regex_match(s, floating)) {
        double value = std::strtod(s.c_str(), nullptr);
        if (!std::isfinite(value)) return false;
        std::ostringstream stream;
        stream.precision(17);
        stream << value;
        std::string text = stream.str();
        out += text;
        return true;
    }
    return false;
}

void convert(const YAML::Node &node, std::string &out) {
    switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null:
        out += "null";
        return;
    case YAML::NodeType::Scalar: {
        const std::string &text = node.Scalar();
        const std::string &tag = node.Tag();
        if (tag == "!" || tag == "tag:yaml.org,2002:str" || tag == "!!str") {
            write_json_string(out, text);
            return;
        }
        bool flag;
        if (is_null(text)) { out += "null"; return; }
        if (is_bool(text, flag)) { out += flag ? "true" : "false"; return; }
        if (write_number(out, text)) return;
        write_json_string(out, text);  // .inf and .nan have no JSON form: they stay strings
        return;
    }
    case YAML::NodeType::Sequence: {
        out.push_back('[');
        bool first = true;
        for (const auto &item : node) {
            if (!first) out.push_back(',');
            first = false;
            convert(item, out);
        }
        out.push_back(']');
        return;
    }
    case YAML::NodeType::Map: {
        out.push_back('{');
        bool first = true;
        for (const auto &item : node) {
            if (!item.first.IsScalar() && !item.first.IsNull()) {
                YAML::Mark mark = item.first.Mark();
                throw ConversionError{"a mapping key must be a scalar to become JSON", mark.line + 1, mark.column + 1};
            }
            if (!first) out.push_back(',');
            first = false;
            write_json_string(out, item.first.IsNull() ? std::string("null") : item.first.Scalar());
            out.push_back(':');
            convert(item.second, out);
        }
        out.push_back('}');
        return;
    }
    }
}

}  // namespace

extern "C" char *cinterop_yaml_to_json(const char *yaml, size_t len, int all_documents, char **err, int *err_line,
                                       int *err_column) {
    auto fail = [&](const std::string &message, int line, int column) -> char * {
        cinterop::set_error(err, message);
        if (err_line != nullptr) *err_line = line;
        if (err_column != nullptr) *err_column = column;
        return nullptr;
    };
    try {
        std::string text = yaml == nullptr ? std::string() : std::string(yaml, len);
        std::vector<YAML::Node> documents = YAML::LoadAll(text);
        std::string out;
        if (all_documents) {
            out.push_back('[');
            for (size_t i = 0; i < documents.size(); i++) {
                if (i > 0) out.push_back(',');
                convert(documents[i], out);
            }
            out.push_back(']');
        } else {
            if (documents.size() > 1) {
                YAML::Mark mark = documents[1].Mark();
                return fail("expected one YAML document, found " + std::to_string(documents.size()), mark.line + 1,
                            mark.column + 1);
            }
            if (documents.empty()) {
                out = "null";
            } else {
                convert(documents[0], out);
            }
        }
        return cinterop::dup_string(out);
    } catch (const YAML::Exception &e) {
        return fail(e.msg, e.mark.line + 1, e.mark.column + 1);
    } catch (const ConversionError &e) {
        return fail(e.message, e.line, e.column);
    } catch (const std::exception &e) {
        return fail(e.what(), 0, 0);
    }
}
