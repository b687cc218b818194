#include "records/xml_document.hpp"

#include <libxml/parser.h>
#include <libxml/tree.h>

#include <climits>
#include <cstring>

namespace ecgq {

void XmlDocument::Free::operator()(_xmlDoc* doc) const {
  xmlFreeDoc(doc);
}

Expected<XmlDocument> XmlDocument::parse(const std::string& bytes, const std::string& path) {
  if (bytes.size() > INT_MAX)
    return Status(ErrorCode::BadRecord, path + ": XML file too large", "path");
  xmlParserCtxtPtr ctxt = xmlNewParserCtxt();
  if (!ctxt) return Status(ErrorCode::Internal, "cannot create an XML parser");
  // No network, no DTD loading, no entity substitution: a file cannot make the reader fetch or
  // expand anything.
  xmlDocPtr doc =
      xmlCtxtReadMemory(ctxt, bytes.data(), static_cast<int>(bytes.size()), path.c_str(), nullptr,
                        XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
  std::string error;
  if (!doc) {
    const xmlError* e = xmlCtxtGetLastError(ctxt);
    error = e && e->message ? "line " + std::to_string(e->line) + ": " + e->message
                            : "not well-formed XML";
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
  }
  xmlFreeParserCtxt(ctxt);
  if (!doc) return Status(ErrorCode::BadRecord, path + ": " + error, "path");
  XmlDocument d;
  d.doc_.reset(doc);
  if (!d.root()) return Status(ErrorCode::BadRecord, path + ": no root element", "path");
  return d;
}

XmlNode XmlDocument::root() const {
  return xmlDocGetRootElement(doc_.get());
}

namespace {

bool named(XmlNode n, const char* name) {
  return n->type == XML_ELEMENT_NODE &&
         (!name || std::strcmp(reinterpret_cast<const char*>(n->name), name) == 0);
}

}  // namespace

XmlNode xml_child(XmlNode node, const char* name) {
  if (!node) return nullptr;
  for (XmlNode c = node->children; c; c = c->next)
    if (named(c, name)) return c;
  return nullptr;
}

std::vector<XmlNode> xml_children(XmlNode node, const char* name) {
  std::vector<XmlNode> out;
  if (!node) return out;
  for (XmlNode c = node->children; c; c = c->next)
    if (named(c, name)) out.push_back(c);
  return out;
}

XmlNode xml_path(XmlNode node, const std::string& path) {
  size_t i = 0;
  while (node && i <= path.size()) {
    const size_t slash = path.find('/', i);
    const std::string part =
        path.substr(i, slash == std::string::npos ? std::string::npos : slash - i);
    node = xml_child(node, part.c_str());
    if (slash == std::string::npos) break;
    i = slash + 1;
  }
  return node;
}

XmlNode xml_find(XmlNode node, const char* name) {
  if (!node) return nullptr;
  for (XmlNode c = node->children; c; c = c->next) {
    if (c->type != XML_ELEMENT_NODE) continue;
    if (named(c, name)) return c;
    if (XmlNode d = xml_find(c, name)) return d;
  }
  return nullptr;
}

std::string xml_text(XmlNode node) {
  if (!node) return "";
  xmlChar* t = xmlNodeGetContent(node);
  std::string s = t ? reinterpret_cast<const char*>(t) : "";
  xmlFree(t);
  return s;
}

std::string xml_path_text(XmlNode node, const std::string& path) {
  std::string s = xml_text(xml_path(node, path));
  const size_t b = s.find_first_not_of(" \t\r\n");
  const size_t e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string xml_attr(XmlNode node, const char* name) {
  if (!node) return "";
  xmlChar* v = xmlGetProp(node, reinterpret_cast<const xmlChar*>(name));
  std::string s = v ? reinterpret_cast<const char*>(v) : "";
  xmlFree(v);
  return s;
}

std::string xml_name(XmlNode node) {
  return node ? reinterpret_cast<const char*>(node->name) : "";
}

long xml_line(XmlNode node) {
  return node ? static_cast<long>(xmlGetLineNo(node)) : 0;
}

}  // namespace ecgq
