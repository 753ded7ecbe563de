// edgelm/text/jinja_parser.hpp - tokens -> a syntax tree, with jinja2's grammar and operator precedence
// (lowest first): `x if c else y`, or, and, not, comparisons (== != < <= > >= in, not in), + -, ~,
// * / // %, **, unary - +, then postfix .attr [sub] (call) and the filter/test chain (| f, is t).
// Nesting is bounded (limits::max_depth) so a hostile template cannot exhaust the stack.
#pragma once
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "jinja_lexer.hpp"
#include "jinja_value.hpp"

namespace edgelm::jinja {

// Named, overridable resource limits for rendering untrusted templates.
struct limits {
  std::size_t max_template_bytes = 1u << 20;    // template source
  std::uint32_t max_depth = 96;                 // nesting of expressions and blocks in the parser
  std::size_t max_output_bytes = 16u << 20;     // rendered text (and any one string built)
  std::uint64_t max_steps = 20'000'000;         // work units: nodes evaluated, loop turns, bytes built
  std::uint32_t max_call_depth = 32;            // nested macro calls
};

enum class node_kind : std::uint8_t {
  // statements
  text, output, if_, for_, set, set_block, macro, filter_block, break_, continue_, generation, with_,
  // expressions
  literal, name, list, tuple, dict, getattr, getitem, slice, call, filter, test, neg, pos, not_,
  and_, or_, binary, compare, cond, concat,
};

struct node {
  node_kind kind = node_kind::literal;
  std::uint32_t pos = 0;
  std::string str;                     // name, attribute, operator, filter/test name, text
  value lit;                           // literal value
  node* a = nullptr;                   // first operand / condition / iterable / object
  node* b = nullptr;                   // second operand
  node* c = nullptr;                   // third (cond's else, slice step, for's filter)
  std::vector<node*> args;             // positional arguments, list/tuple items, dict keys+values
  std::vector<std::pair<std::string, node*>> kwargs;  // keyword arguments, macro parameter defaults
  std::vector<std::string> names;      // for/set targets, compare operators, macro parameter names
  std::vector<node*> body, else_body;  // statement bodies
  bool negated = false;                // `is not`
};

// A parsed template: owns its nodes; `root` is the top-level statement list.
struct program {
  std::string source;  // normalised source (error positions refer to it)
  std::vector<std::unique_ptr<node>> pool;
  std::vector<node*> root;
};

class parser {
 public:
  parser(program& p, std::vector<token> toks, const limits& lim) : p_(p), t_(std::move(toks)), lim_(lim) {}

  result<void> parse() {
    auto r = parse_body({}, p_.root);
    if (err_) return *err_;
    if (!r.empty()) return fail(cur().pos, "unexpected '{% " + r + " %}'");
    return {};
  }

 private:
  program& p_;
  std::vector<token> t_;
  std::size_t i_ = 0;
  const limits& lim_;
  std::optional<error> err_;
  std::uint32_t depth_ = 0;

  const token& cur() const { return t_[i_]; }
  const token& peek(std::size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  void next() { if (i_ + 1 < t_.size()) ++i_; }
  bool failed() const { return err_.has_value(); }
  error fail(std::size_t pos, const std::string& what) {
    if (!err_) err_ = template_error(p_.source, pos, what);
    return *err_;
  }
  node* make(node_kind k, std::uint32_t pos) {
    p_.pool.push_back(std::make_unique<node>());
    node* n = p_.pool.back().get();
    n->kind = k;
    n->pos = pos;
    return n;
  }
  bool is_op(std::string_view o) const { return cur().type == tok::op && cur().text == o; }
  bool is_name(std::string_view n) const { return cur().type == tok::name && cur().text == n; }
  bool expect_op(std::string_view o) {
    if (is_op(o)) { next(); return true; }
    fail(cur().pos, "expected '" + std::string(o) + "', got " + describe(cur()));
    return false;
  }
  bool expect_block_end() {
    if (cur().type == tok::block_end) { next(); return true; }
    fail(cur().pos, "expected end of statement block '%}', got " + describe(cur()));
    return false;
  }
  static std::string describe(const token& t) {
    switch (t.type) {
      case tok::eof: return "end of template";
      case tok::block_end: return "'%}'";
      case tok::var_end: return "'}}'";
      case tok::name: return "'" + t.text + "'";
      case tok::op: return "'" + t.text + "'";
      case tok::string: return "a string";
      default: return "a literal";
    }
  }
  struct depth_guard {
    parser& p;
    bool ok;
    explicit depth_guard(parser& q) : p(q), ok(++q.depth_ <= q.lim_.max_depth) {
      if (!ok) q.fail(q.cur().pos, "template nested deeper than the limit of " + std::to_string(q.lim_.max_depth));
    }
    ~depth_guard() { --p.depth_; }
  };

  // Parses statements into `out` until one of the `end` keywords opens a block ({% endif %}, ...).
  // Returns that keyword (the token after it is current) or "" at the end of the template.
  std::string parse_body(std::initializer_list<std::string_view> end, std::vector<node*>& out) {
    depth_guard g(*this);
    if (!g.ok) return {};
    while (!failed()) {
      const token& t = cur();
      if (t.type == tok::eof) {
        if (end.size()) fail(t.pos, "unexpected end of template, expected '{% " + std::string(*(end.end() - 1)) + " %}'");
        return {};
      }
      if (t.type == tok::text) {
        node* n = make(node_kind::text, t.pos);
        n->str = t.text;
        out.push_back(n);
        next();
      } else if (t.type == tok::var_begin) {
        next();
        node* n = make(node_kind::output, t.pos);
        n->a = parse_tuple_expr();
        if (failed()) return {};
        if (cur().type != tok::var_end) { fail(cur().pos, "expected '}}', got " + describe(cur())); return {}; }
        next();
        out.push_back(n);
      } else if (t.type == tok::block_begin) {
        next();
        if (cur().type != tok::name) { fail(cur().pos, "expected a statement name after '{%'"); return {}; }
        const std::string kw = cur().text;
        for (auto e : end)
          if (kw == e) { next(); return kw; }
        node* s = parse_statement();
        if (failed()) return {};
        if (s) out.push_back(s);
      } else {
        fail(t.pos, "unexpected token");
        return {};
      }
    }
    return {};
  }

  node* parse_statement() {
    const token t = cur();
    const std::string& kw = t.text;
    next();
    if (kw == "if") return parse_if(t.pos);
    if (kw == "for") return parse_for(t.pos);
    if (kw == "set") return parse_set(t.pos);
    if (kw == "macro") return parse_macro(t.pos);
    if (kw == "filter") {
      node* n = make(node_kind::filter_block, t.pos);
      n->a = parse_filter_chain(nullptr);
      if (failed() || !expect_block_end()) return nullptr;
      if (parse_body({"endfilter"}, n->body) != "endfilter") return nullptr;
      expect_block_end();
      return n;
    }
    if (kw == "break" || kw == "continue") {
      node* n = make(kw == "break" ? node_kind::break_ : node_kind::continue_, t.pos);
      expect_block_end();
      return n;
    }
    if (kw == "with") {  // {% with a = 1, b = 2 %}...{% endwith %}: a scope with those variables
      node* n = make(node_kind::with_, t.pos);
      while (cur().type == tok::name) {
        n->names.push_back(cur().text);
        next();
        if (!expect_op("=")) return nullptr;
        n->args.push_back(parse_expr());
        if (failed()) return nullptr;
        if (!is_op(",")) break;
        next();
      }
      if (!expect_block_end()) return nullptr;
      if (parse_body({"endwith"}, n->body) != "endwith") return nullptr;
      expect_block_end();
      return n;
    }
    if (kw == "generation") {  // transformers' AssistantTracker extension: renders its body
      node* n = make(node_kind::generation, t.pos);
      if (!expect_block_end()) return nullptr;
      if (parse_body({"endgeneration"}, n->body) != "endgeneration") return nullptr;
      expect_block_end();
      return n;
    }
    fail(t.pos, "unsupported or unknown statement '{% " + kw + " %}'");
    return nullptr;
  }

  node* parse_if(std::uint32_t pos) {
    node* n = make(node_kind::if_, pos);
    n->a = parse_expr(/*no_cond=*/true);  // jinja: `{% if a if b %}` is a syntax error
    if (failed() || !expect_block_end()) return nullptr;
    const std::string e = parse_body({"elif", "else", "endif"}, n->body);
    if (failed()) return nullptr;
    if (e == "elif") {
      node* elif = parse_if(cur().pos);
      if (!elif) return nullptr;
      n->else_body.push_back(elif);  // the elif chain ends at its own endif
    } else if (e == "else") {
      if (!expect_block_end()) return nullptr;
      if (parse_body({"endif"}, n->else_body) != "endif") return nullptr;
      expect_block_end();
    } else if (e == "endif") {
      expect_block_end();
    } else return nullptr;
    return n;
  }

  node* parse_for(std::uint32_t pos) {
    node* n = make(node_kind::for_, pos);
    // targets: name (, name)*  (parentheses allowed)
    const bool paren = is_op("(");
    if (paren) next();
    for (;;) {
      if (cur().type != tok::name) { fail(cur().pos, "expected a loop variable name"); return nullptr; }
      n->names.push_back(cur().text);
      next();
      if (!is_op(",")) break;
      next();
    }
    if (paren && !expect_op(")")) return nullptr;
    if (!is_name("in")) { fail(cur().pos, "expected 'in' in for loop"); return nullptr; }
    next();
    n->a = parse_expr(/*no_cond=*/true);
    if (failed()) return nullptr;
    if (is_name("if")) {
      next();
      n->c = parse_expr();
      if (failed()) return nullptr;
    }
    if (is_name("recursive")) { fail(cur().pos, "recursive for loops are not supported"); return nullptr; }
    if (!expect_block_end()) return nullptr;
    const std::string e = parse_body({"else", "endfor"}, n->body);
    if (failed()) return nullptr;
    if (e == "else") {
      if (!expect_block_end()) return nullptr;
      if (parse_body({"endfor"}, n->else_body) != "endfor") return nullptr;
    }
    expect_block_end();
    return n;
  }

  node* parse_set(std::uint32_t pos) {
    // set a = expr | set a, b = expr | set ns.attr = expr | set a %}...{% endset
    std::vector<std::string> names;
    std::string attr;
    for (;;) {
      if (cur().type != tok::name) { fail(cur().pos, "expected a variable name after 'set'"); return nullptr; }
      names.push_back(cur().text);
      next();
      if (is_op(".") && names.size() == 1) {
        next();
        if (cur().type != tok::name) { fail(cur().pos, "expected an attribute name"); return nullptr; }
        attr = cur().text;
        next();
        break;
      }
      if (!is_op(",")) break;
      next();
    }
    if (cur().type == tok::block_end || is_op("|")) {
      if (names.size() != 1 || !attr.empty()) { fail(cur().pos, "a block set takes one variable name"); return nullptr; }
      node* n = make(node_kind::set_block, pos);
      n->names = names;
      if (is_op("|")) n->a = parse_filter_chain(nullptr);
      if (failed() || !expect_block_end()) return nullptr;
      if (parse_body({"endset"}, n->body) != "endset") return nullptr;
      expect_block_end();
      return n;
    }
    if (!expect_op("=")) return nullptr;
    node* n = make(node_kind::set, pos);
    n->names = names;
    n->str = attr;  // non-empty: namespace attribute assignment
    n->a = parse_tuple_expr();
    if (failed() || !expect_block_end()) return nullptr;
    return n;
  }

  node* parse_macro(std::uint32_t pos) {
    node* n = make(node_kind::macro, pos);
    if (cur().type != tok::name) { fail(cur().pos, "expected a macro name"); return nullptr; }
    n->str = cur().text;
    next();
    if (!expect_op("(")) return nullptr;
    while (!is_op(")")) {
      if (cur().type != tok::name) { fail(cur().pos, "expected a parameter name"); return nullptr; }
      std::string pname = cur().text;
      next();
      node* dflt = nullptr;
      if (is_op("=")) {
        next();
        dflt = parse_expr();
        if (failed()) return nullptr;
      }
      n->names.push_back(pname);
      n->kwargs.emplace_back(pname, dflt);
      if (!is_op(",")) break;
      next();
    }
    if (!expect_op(")") || !expect_block_end()) return nullptr;
    if (parse_body({"endmacro"}, n->body) != "endmacro") return nullptr;
    if (cur().type == tok::name) next();  // {% endmacro name %}
    expect_block_end();
    return n;
  }

  // ---- expressions ----

  // An expression or a bare tuple `a, b` (in {{ }} and set).
  node* parse_tuple_expr() {
    const auto pos = cur().pos;
    node* first = parse_expr();
    if (failed() || !is_op(",")) return first;
    node* t = make(node_kind::tuple, pos);
    t->args.push_back(first);
    while (is_op(",")) {
      next();
      if (cur().type == tok::var_end || cur().type == tok::block_end) break;
      t->args.push_back(parse_expr());
      if (failed()) return nullptr;
    }
    return t;
  }

  node* parse_expr(bool no_cond = false) {
    depth_guard g(*this);
    if (!g.ok) return nullptr;
    node* x = parse_or();
    if (no_cond) return x;
    while (!failed() && is_name("if")) {
      node* n = make(node_kind::cond, cur().pos);
      next();
      n->a = parse_or();  // condition
      n->b = x;           // value when true
      if (is_name("else")) {
        next();
        n->c = parse_expr();
      }
      x = n;
    }
    return failed() ? nullptr : x;
  }
  node* parse_or() {
    node* x = parse_and();
    while (!failed() && is_name("or")) {
      node* n = make(node_kind::or_, cur().pos);
      next();
      n->a = x;
      n->b = parse_and();
      x = n;
    }
    return x;
  }
  node* parse_and() {
    node* x = parse_not();
    while (!failed() && is_name("and")) {
      node* n = make(node_kind::and_, cur().pos);
      next();
      n->a = x;
      n->b = parse_not();
      x = n;
    }
    return x;
  }
  node* parse_not() {
    if (is_name("not")) {
      depth_guard g(*this);
      if (!g.ok) return nullptr;
      node* n = make(node_kind::not_, cur().pos);
      next();
      n->a = parse_not();
      return n;
    }
    return parse_compare();
  }
  node* parse_compare() {
    const auto pos = cur().pos;
    node* x = parse_math1();
    node* n = nullptr;
    while (!failed()) {
      std::string op;
      if (cur().type == tok::op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
                                    cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        next();
      } else if (is_name("in")) {
        op = "in";
        next();
      } else if (is_name("not") && peek().type == tok::name && peek().text == "in") {
        op = "notin";
        next();
        next();
      } else break;
      if (!n) {
        n = make(node_kind::compare, pos);
        n->a = x;
      }
      n->names.push_back(op);
      n->args.push_back(parse_math1());
    }
    return n ? n : x;
  }
  node* binary(node_kind k, std::string op, node* a, node* b, std::uint32_t pos) {
    node* n = make(k, pos);
    n->str = std::move(op);
    n->a = a;
    n->b = b;
    return n;
  }
  node* parse_math1() {
    node* x = parse_concat();
    while (!failed() && cur().type == tok::op && (cur().text == "+" || cur().text == "-")) {
      const token t = cur();
      next();
      x = binary(node_kind::binary, t.text, x, parse_concat(), t.pos);
    }
    return x;
  }
  node* parse_concat() {
    node* x = parse_math2();
    while (!failed() && is_op("~")) {
      const auto pos = cur().pos;
      next();
      x = binary(node_kind::concat, "~", x, parse_math2(), pos);
    }
    return x;
  }
  node* parse_math2() {
    node* x = parse_pow();
    while (!failed() && cur().type == tok::op &&
           (cur().text == "*" || cur().text == "/" || cur().text == "//" || cur().text == "%")) {
      const token t = cur();
      next();
      x = binary(node_kind::binary, t.text, x, parse_pow(), t.pos);
    }
    return x;
  }
  node* parse_pow() {
    node* x = parse_unary(true);
    while (!failed() && is_op("**")) {
      const auto pos = cur().pos;
      next();
      x = binary(node_kind::binary, "**", x, parse_unary(true), pos);
    }
    return x;
  }
  node* parse_unary(bool with_filter) {
    depth_guard g(*this);
    if (!g.ok) return nullptr;
    node* x = nullptr;
    if (is_op("-") || is_op("+")) {
      node* n = make(is_op("-") ? node_kind::neg : node_kind::pos, cur().pos);
      next();
      n->a = parse_unary(false);
      x = n;
    } else {
      x = parse_primary();
    }
    if (failed()) return nullptr;
    x = parse_postfix(x);
    if (with_filter) x = parse_filter_chain(x);
    return failed() ? nullptr : x;
  }

  node* parse_primary() {
    const token t = cur();
    switch (t.type) {
      case tok::name: {
        next();
        node* n = make(node_kind::literal, t.pos);
        if (t.text == "true" || t.text == "True") n->lit = value::boolean(true);
        else if (t.text == "false" || t.text == "False") n->lit = value::boolean(false);
        else if (t.text == "none" || t.text == "None") n->lit = value::none();
        else { n->kind = node_kind::name; n->str = t.text; }
        return n;
      }
      case tok::string: {
        std::string s = t.text;
        next();
        while (cur().type == tok::string) { s += cur().text; next(); }  // adjacent literals join
        node* n = make(node_kind::literal, t.pos);
        n->lit = value::string(std::move(s));
        return n;
      }
      case tok::integer: {
        next();
        std::int64_t v = 0;
        for (char ch : t.text)
          if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, ch - '0', &v)) {
            fail(t.pos, "integer literal too large");
            return nullptr;
          }
        node* n = make(node_kind::literal, t.pos);
        n->lit = value::integer(v);
        return n;
      }
      case tok::number: {
        next();
        node* n = make(node_kind::literal, t.pos);
        n->lit = value::number(std::strtod(t.text.c_str(), nullptr));
        return n;
      }
      case tok::op:
        if (t.text == "(") {
          next();
          if (is_op(")")) {  // empty tuple
            next();
            return make(node_kind::tuple, t.pos);
          }
          node* x = parse_expr();
          if (failed()) return nullptr;
          if (is_op(",")) {
            node* tu = make(node_kind::tuple, t.pos);
            tu->args.push_back(x);
            while (is_op(",")) {
              next();
              if (is_op(")")) break;
              tu->args.push_back(parse_expr());
              if (failed()) return nullptr;
            }
            x = tu;
          }
          if (!expect_op(")")) return nullptr;
          return x;
        }
        if (t.text == "[") {
          next();
          node* n = make(node_kind::list, t.pos);
          while (!is_op("]")) {
            n->args.push_back(parse_expr());
            if (failed()) return nullptr;
            if (!is_op(",")) break;
            next();
          }
          if (!expect_op("]")) return nullptr;
          return n;
        }
        if (t.text == "{") {
          next();
          node* n = make(node_kind::dict, t.pos);
          while (!is_op("}")) {
            n->args.push_back(parse_expr());
            if (failed() || !expect_op(":")) return nullptr;
            n->args.push_back(parse_expr());
            if (failed()) return nullptr;
            if (!is_op(",")) break;
            next();
          }
          if (!expect_op("}")) return nullptr;
          return n;
        }
        break;
      default: break;
    }
    fail(t.pos, "unexpected " + describe(t) + " in expression");
    return nullptr;
  }

  void parse_call_args(node* n) {
    // after '(' : positional and keyword arguments
    while (!failed() && !is_op(")")) {
      if (cur().type == tok::name && peek().type == tok::op && peek().text == "=") {
        std::string k = cur().text;
        next();
        next();
        n->kwargs.emplace_back(std::move(k), parse_expr());
      } else {
        if (!n->kwargs.empty()) { fail(cur().pos, "positional argument after keyword argument"); return; }
        n->args.push_back(parse_expr());
      }
      if (failed() || !is_op(",")) break;
      next();
    }
    expect_op(")");
  }

  node* parse_postfix(node* x) {
    std::uint32_t chain = 0;
    while (!failed()) {
      if (++chain > lim_.max_depth) { fail(cur().pos, "expression chain longer than the nesting limit"); return nullptr; }
      if (is_op(".")) {
        const auto pos = cur().pos;
        next();
        node* n = make(node_kind::getattr, pos);
        n->a = x;
        if (cur().type == tok::name) n->str = cur().text;
        else if (cur().type == tok::integer) { n->kind = node_kind::getitem; node* k = make(node_kind::literal, cur().pos);
          k->lit = value::integer(std::strtoll(cur().text.c_str(), nullptr, 10)); n->b = k; }
        else { fail(cur().pos, "expected an attribute name after '.'"); return nullptr; }
        next();
        x = n;
      } else if (is_op("[")) {
        const auto pos = cur().pos;
        next();
        node* lo = nullptr;
        if (!is_op(":")) { lo = parse_expr(); if (failed()) return nullptr; }
        if (is_op(":")) {  // slice
          node* n = make(node_kind::slice, pos);
          n->a = x;
          n->args = {lo, nullptr, nullptr};
          next();
          if (!is_op("]") && !is_op(":")) { n->args[1] = parse_expr(); if (failed()) return nullptr; }
          if (is_op(":")) {
            next();
            if (!is_op("]")) { n->args[2] = parse_expr(); if (failed()) return nullptr; }
          }
          if (!expect_op("]")) return nullptr;
          x = n;
        } else {
          if (is_op(",")) {  // x[a, b]: a tuple key
            node* tu = make(node_kind::tuple, pos);
            tu->args.push_back(lo);
            while (is_op(",")) {
              next();
              if (is_op("]")) break;
              tu->args.push_back(parse_expr());
              if (failed()) return nullptr;
            }
            lo = tu;
          }
          if (!expect_op("]")) return nullptr;
          node* n = make(node_kind::getitem, pos);
          n->a = x;
          n->b = lo;
          x = n;
        }
      } else if (is_op("(")) {
        node* n = make(node_kind::call, cur().pos);
        next();
        n->a = x;
        parse_call_args(n);
        x = n;
      } else break;
    }
    return x;
  }

  // `| name(args)` filters and `is [not] name args` tests after an operand (x == nullptr: a
  // filter block's chain, applied to the block's output).
  node* parse_filter_chain(node* x) {
    std::uint32_t chain = 0;
    while (!failed()) {
      if (++chain > lim_.max_depth) { fail(cur().pos, "filter chain longer than the nesting limit"); return nullptr; }
      if (is_op("|") || (x == nullptr && chain == 1 && cur().type == tok::name)) {
        if (is_op("|")) next();
        if (cur().type != tok::name) { fail(cur().pos, "expected a filter name after '|'"); return nullptr; }
        node* n = make(node_kind::filter, cur().pos);
        n->str = cur().text;
        next();
        while (is_op(".") && peek().type == tok::name) {  // jinja allows dotted filter names (unknown at run time)
          next();
          n->str += "." + cur().text;
          next();
        }
        n->a = x;
        if (is_op("(")) { next(); parse_call_args(n); }
        x = n;
      } else if (x != nullptr && is_name("is")) {
        node* n = make(node_kind::test, cur().pos);
        next();
        if (is_name("not")) { n->negated = true; next(); }
        if (cur().type != tok::name) { fail(cur().pos, "expected a test name after 'is'"); return nullptr; }
        n->str = cur().text;
        next();
        while (is_op(".") && peek().type == tok::name) {  // dotted test names, as jinja (unknown at run time)
          next();
          n->str += "." + cur().text;
          next();
        }
        n->a = x;
        if (is_op("(")) { next(); parse_call_args(n); }
        else if ((cur().type == tok::name && cur().text != "else" && cur().text != "or" && cur().text != "and") ||
                 cur().type == tok::string || cur().type == tok::integer || cur().type == tok::number ||
                 is_op("[") || is_op("{")) {
          if (is_name("is")) { fail(cur().pos, "you cannot chain multiple tests with 'is'"); return nullptr; }
          // one argument without parentheses: `is divisibleby 3`, `is sameas none`
          node* arg = parse_primary();
          if (!failed()) arg = parse_postfix(arg);
          if (failed()) return nullptr;
          n->args.push_back(arg);
        }
        x = n;
      } else if (x != nullptr && chain > 1 && is_op("(")) {
        node* n = make(node_kind::call, cur().pos);
        next();
        n->a = x;
        parse_call_args(n);
        x = n;
      } else break;
    }
    return x;
  }
};

// Parses a template (source as given; newlines are normalised here).
inline result<program> parse_program(std::string_view source, const limits& lim = {}) {
  if (source.size() > lim.max_template_bytes)
    return make_error(errc::count_too_large, "template of " + std::to_string(source.size()) + " bytes exceeds the limit of " +
                      std::to_string(lim.max_template_bytes), error::no_offset, "chat_template");
  program p;
  p.source = normalise_template(source);
  auto toks = lex(p.source);
  if (!toks) return toks.error();
  parser ps(p, std::move(*toks), lim);
  auto r = ps.parse();
  if (!r) return r.error();
  return p;
}

}  // namespace edgelm::jinja
