#include "model/pickle_value.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace ecgq::ckpt {
namespace {

// Deeper nesting is printed as "..."; it also stops self-referencing containers.
constexpr int kMaxReprDepth = 16;

}  // namespace

PyHeap::PyHeap() {
  nodes_.reserve(1024);
  nodes_.push_back(PyNode{PyKind::None});
  PyNode t{PyKind::Bool};
  t.i = 1;
  nodes_.push_back(t);
  nodes_.push_back(PyNode{PyKind::Bool});
}

uint32_t PyHeap::add(PyNode node) {
  nodes_.push_back(std::move(node));
  return uint32_t(nodes_.size() - 1);
}

uint32_t PyHeap::dict_get(uint32_t dict, const std::string& key) const {
  const PyNode& d = nodes_[dict];
  if (d.kind != PyKind::Dict) return UINT32_MAX;
  uint32_t found = UINT32_MAX;
  for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
    const PyNode& kn = nodes_[d.items[k]];
    if (kn.kind == PyKind::Str && kn.s == key) found = d.items[k + 1];
  }
  return found;
}

std::string python_float_repr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  int prec = 1;
  for (; prec <= 17; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  std::string s = buf;
  // Python switches to exponent notation only below 1e-4 or from 1e16 on.
  auto e = s.find('e');
  if (e != std::string::npos) {
    int exp = std::atoi(s.c_str() + e + 1);
    if (exp >= -4 && exp < 16) {
      int decimals = std::max(0, prec - 1 - exp);
      std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
      s = buf;
    } else {
      // Python writes at least two exponent digits, as printf does: "1e-05", "1e+16".
      return s;
    }
  }
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string python_str_repr(const std::string& v, size_t max_len) {
  const bool has_single = v.find('\'') != std::string::npos;
  const bool has_double = v.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : v) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    if (c == '\\' || c == static_cast<unsigned char>(q)) {
      out += '\\';
      out += char(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c < 32 || c == 127) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);  // UTF-8 passes through, as Python prints printable non-ASCII
    }
  }
  out += q;
  return out;
}

std::string PyHeap::type_name(uint32_t index) const {
  const PyNode& n = nodes_[index];
  switch (n.kind) {
    case PyKind::None:
      return "None";
    case PyKind::Bool:
      return "bool";
    case PyKind::Int:
      return "int";
    case PyKind::BigInt:
      return "int (beyond int64)";
    case PyKind::Float:
      return "float";
    case PyKind::Str:
      return "str";
    case PyKind::Bytes:
      return "bytes";
    case PyKind::Tuple:
      return "tuple";
    case PyKind::List:
      return "list";
    case PyKind::Dict:
      return "dict";
    case PyKind::Set:
      return "set";
    case PyKind::Global:
      return "global " + n.s;
    case PyKind::Storage:
      return "storage";
    case PyKind::Tensor:
      return "tensor";
    case PyKind::Opaque:
      return "object (" + n.s + ")";
  }
  return "?";
}

std::string PyHeap::repr(uint32_t index, size_t max_len) const {
  std::string out;
  repr_into(index, out, max_len, 0);
  if (out.size() > max_len) {
    out.resize(max_len);
    out += "...";
  }
  return out;
}

void PyHeap::repr_into(uint32_t index, std::string& out, size_t max_len, int depth) const {
  if (out.size() > max_len) return;
  if (depth > kMaxReprDepth) {
    out += "...";
    return;
  }
  const PyNode& n = nodes_[index];
  auto seq = [&](const char* open, const char* close, bool one_tuple) {
    out += open;
    for (size_t k = 0; k < n.items.size(); ++k) {
      if (out.size() > max_len) return;
      if (k) out += ", ";
      repr_into(n.items[k], out, max_len, depth + 1);
    }
    if (one_tuple && n.items.size() == 1) out += ",";
    out += close;
  };
  switch (n.kind) {
    case PyKind::None:
      out += "None";
      break;
    case PyKind::Bool:
      out += n.i ? "True" : "False";
      break;
    case PyKind::Int:
      out += std::to_string(n.i);
      break;
    case PyKind::BigInt:
      out += "<int beyond int64>";
      break;
    case PyKind::Float:
      out += python_float_repr(n.f);
      break;
    case PyKind::Str:
      out += python_str_repr(n.s, max_len);
      break;
    case PyKind::Bytes:
      out += "b" + python_str_repr(n.s, max_len);
      break;
    case PyKind::Tuple:
      seq("(", ")", true);
      break;
    case PyKind::List:
      seq("[", "]", false);
      break;
    case PyKind::Set:
      if (n.items.empty()) {
        out += "set()";
      } else {
        seq("{", "}", false);
      }
      break;
    case PyKind::Dict:
      out += "{";
      for (size_t k = 0; k + 1 < n.items.size(); k += 2) {
        if (out.size() > max_len) return;
        if (k) out += ", ";
        repr_into(n.items[k], out, max_len, depth + 1);
        out += ": ";
        repr_into(n.items[k + 1], out, max_len, depth + 1);
      }
      out += "}";
      break;
    case PyKind::Global:
      out += "<global " + n.s + ">";
      break;
    case PyKind::Storage:
      out += "<storage " + n.s + ">";
      break;
    case PyKind::Tensor:
      out += "<tensor>";
      break;
    case PyKind::Opaque:
      out += "<" + n.s + ">";
      break;
  }
}

}  // namespace ecgq::ckpt
