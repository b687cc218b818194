// A parsed XML document (libxml2) for the XML ECG readers: no network, no external DTDs, no
// entity substitution; elements are found by local name (namespaces ignored, since exporters
// disagree on prefixes).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/status.hpp"

struct _xmlDoc;
struct _xmlNode;

namespace ecgq {

// An element of an XmlDocument (valid while the document lives).
using XmlNode = const _xmlNode*;

// Owns one parsed document.
class XmlDocument {
 public:
  // Parses `bytes`; a bad_record error names the line of the first XML error.
  static Expected<XmlDocument> parse(const std::string& bytes, const std::string& path);

  // The root element.
  XmlNode root() const;

 private:
  struct Free {
    void operator()(_xmlDoc* doc) const;
  };
  std::unique_ptr<_xmlDoc, Free> doc_;
};

// The first child element of `node` named `name` (local name), or nullptr.
XmlNode xml_child(XmlNode node, const char* name);
// Every child element of `node` named `name` (all child elements when name is nullptr).
std::vector<XmlNode> xml_children(XmlNode node, const char* name);
// The element at the path of child names below `node` ("a/b/c"), or nullptr.
XmlNode xml_path(XmlNode node, const std::string& path);
// The first descendant element of `node` named `name` in document order, or nullptr.
XmlNode xml_find(XmlNode node, const char* name);
// The text content of `node` ("" for nullptr).
std::string xml_text(XmlNode node);
// The text of the element at `path` below `node`, trimmed ("" when absent).
std::string xml_path_text(XmlNode node, const std::string& path);
// Attribute `name` of `node` ("" when absent).
std::string xml_attr(XmlNode node, const char* name);
// The local name of `node`.
std::string xml_name(XmlNode node);
// The line of `node` in the document (for messages).
long xml_line(XmlNode node);

}  // namespace ecgq
