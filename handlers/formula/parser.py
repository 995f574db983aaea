"""Syntax tree and recursive-descent parser of the formula language.

Grammar (EBNF; keywords and function names are case-insensitive)::

    formula    = or_expr ;
    or_expr    = and_expr { ("OR" | "||") and_expr } ;
    and_expr   = not_expr { ("AND" | "&&") not_expr } ;
    not_expr   = ("NOT" | "!") not_expr | comparison ;
    comparison = additive [ cmp_op additive | ["NOT"] "IN" "(" expr_list ")" ] ;
    cmp_op     = ">" | ">=" | "<" | "<=" | "=" | "==" | "!=" | "<>" | "≥" | "≤" | "≠" ;
    additive   = term { ("+" | "-") term } ;
    term       = unary { ("*" | "/" | "×" | "÷") unary } ;
    unary      = ("-" | "+") unary | primary ;
    primary    = number | string | "TRUE" | "FALSE" | field
               | name "(" [ expr_list ] ")" | "(" or_expr ")" ;
    expr_list  = or_expr { "," or_expr } ;
    number     = digits [ "." digits ] [ "%" | "万" | "亿" ] ;
    string     = '"' … '"' | "'" … "'" | "“" … "”" | "‘" … "’" | "「" … "」" ;
    field      = name | "`" any text "`" ;

Additive, multiplicative and AND/OR chains become one n-ary node each, so a long sum
does not make a deep tree; depth grows only with brackets, calls, unary minus and NOT,
and is bounded by MAX_DEPTH. The node count is bounded by MAX_NODES.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from handlers.formula.errors import MAX_DEPTH, MAX_NODES, SourceMap
from handlers.formula.lexer import KEYWORDS, Kind, Token, tokenize


@dataclass(slots=True, eq=False)
class Node:
    """Base of all syntax nodes; ``start``/``end`` are offsets into the source."""

    start: int
    end: int
    type: str = field(default="", init=False)  # filled in by the checker


@dataclass(slots=True, eq=False)
class NumberLit(Node):
    """A number literal, already exact (95% is 0.95, 3万 is 30000)."""

    value: Decimal = Decimal(0)


@dataclass(slots=True, eq=False)
class TextLit(Node):
    """A quoted string."""

    value: str = ""


@dataclass(slots=True, eq=False)
class BoolLit(Node):
    """TRUE or FALSE."""

    value: bool = False


@dataclass(slots=True, eq=False)
class FieldRef(Node):
    """A field of the record; ``name`` becomes the schema's spelling after checking."""

    name: str = ""
    lookup: str = ""  # folded spelling used to find the field in the schema


@dataclass(slots=True, eq=False)
class Negate(Node):
    """Unary minus."""

    operand: Node | None = None


@dataclass(slots=True, eq=False)
class Sum(Node):
    """a + b - c …; ``terms`` are (sign, node) with sign "+" or "-"."""

    terms: list[tuple[str, Node]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Product(Node):
    """a * b / c …; ``factors`` are (op, node) with op "*" or "/" (the first is "*")."""

    factors: list[tuple[str, Node]] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Compare(Node):
    """left op right with op one of > >= < <= = !=."""

    op: str = "="
    left: Node | None = None
    right: Node | None = None
    op_start: int = 0
    op_end: int = 0


@dataclass(slots=True, eq=False)
class Logic(Node):
    """AND / OR over two or more conditions."""

    op: str = "AND"
    items: list[Node] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Not(Node):
    """NOT condition."""

    operand: Node | None = None


@dataclass(slots=True, eq=False)
class Member(Node):
    """needle IN (options…), or NOT IN."""

    needle: Node | None = None
    options: list[Node] = field(default_factory=list)
    negated: bool = False


@dataclass(slots=True, eq=False)
class Call(Node):
    """A function call; ``name`` is folded to upper case."""

    name: str = ""
    args: list[Node] = field(default_factory=list)
    name_end: int = 0


COMPARE_OPS = frozenset({">", ">=", "<", "<=", "=", "!="})


class Parser:
    """Recursive-descent parser over the token list; one instance per compile."""

    def __init__(self, source: str, where: SourceMap) -> None:
        self.source = source
        self.where = where
        self.tokens = tokenize(source, where)
        self.index = 0
        self.depth = 0
        self.nodes = 0

    # -- helpers -------------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def peek(self, ahead: int = 1) -> Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind is not Kind.END:
            self.index += 1
        return token

    def is_op(self, *ops: str) -> bool:
        return self.token.kind is Kind.OP and self.token.text in ops

    def is_keyword(self, word: str, token: Token | None = None) -> bool:
        token = token or self.token
        if token.kind is Kind.OP:
            return token.text == word  # && || ! arrive as AND OR NOT
        return token.kind is Kind.NAME and not token.quoted and token.text.upper() == word

    def count(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise self.where.error(
                node.start,
                f"公式太复杂: 超过 {MAX_NODES} 个部分；请拆成几个较短的规则",
                f"formula too complex: more than {MAX_NODES} nodes",
            )
        return node

    def enter(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.where.error(
                token.start,
                f"公式嵌套太深: 超过 {MAX_DEPTH} 层括号/函数；IF 多层嵌套可改用 IFS(条件1, 值1, 条件2, 值2, …)",
                f"formula nested too deeply: more than {MAX_DEPTH} levels",
            )

    def describe(self, token: Token) -> str:
        return "公式结尾" if token.kind is Kind.END else f"`{self.source[token.start:token.end]}`"

    def describe_en(self, token: Token) -> str:
        return "end of formula" if token.kind is Kind.END else f"`{self.source[token.start:token.end]}`"

    def expect_close(self, opener: Token, what_zh: str = "", what_en: str = "") -> Token:
        if self.is_op(")"):
            return self.advance()
        line, column = self.where.position(opener.start)
        token = self.token
        if token.kind is Kind.END:
            zh = f"缺少右括号 `)`，与第{line}行第{column}列的 `(` 配对{what_zh}"
            en = f"missing `)` to close the `(` at line {line} column {column}{what_en}"
        else:
            zh = f"这里应是 `)` 或 `,`，却遇到 {self.describe(token)}（与第{line}行第{column}列的 `(` 配对）；是否缺少运算符或逗号?"
            en = f"expected `)` or `,` but found {self.describe_en(token)} (for the `(` at line {line} column {column})"
        raise self.where.error(token.start, zh, en)

    # -- grammar -------------------------------------------------------------------------
    def parse(self) -> Node:
        """Parse the whole formula; refuses empty input and trailing tokens."""
        if self.token.kind is Kind.END:
            raise self.where.error(0, "公式为空", "formula is empty")
        node = self.or_expr()
        token = self.token  # re-read: or_expr() advanced
        if token.kind is not Kind.END:
            if self.is_op(")"):
                raise self.where.error(token.start, "多余的右括号 `)`", "unmatched `)`")
            raise self.where.error(
                token.start,
                f"多余的 {self.describe(token)}: 前面的表达式已经完整，是否缺少运算符(如 `+`、`*`、AND)或逗号?",
                f"unexpected {self.describe_en(token)} after a complete expression; missing operator?",
            )
        return node

    def or_expr(self) -> Node:
        first = self.and_expr()
        if not self.is_keyword("OR"):
            return first
        items = [first]
        while self.is_keyword("OR"):
            self.advance()
            items.append(self.and_expr())
        return self.count(Logic(first.start, items[-1].end, op="OR", items=items))

    def and_expr(self) -> Node:
        first = self.not_expr()
        if not self.is_keyword("AND"):
            return first
        items = [first]
        while self.is_keyword("AND"):
            self.advance()
            items.append(self.not_expr())
        return self.count(Logic(first.start, items[-1].end, op="AND", items=items))

    def not_expr(self) -> Node:
        if self.is_keyword("NOT"):
            token = self.advance()
            self.enter(token)
            operand = self.not_expr()
            self.depth -= 1
            return self.count(Not(token.start, operand.end, operand=operand))
        return self.comparison()

    def comparison(self) -> Node:
        left = self.additive()
        negated = False
        if self.is_keyword("NOT") and self.is_keyword("IN", self.peek()):
            self.advance()
            negated = True
        if self.is_keyword("IN"):
            in_token = self.advance()
            if not self.is_op("("):
                raise self.where.error(
                    self.token.start,
                    "IN 后面应是括号中的候选值，如 `行业 IN (\"汽车\", \"电子\")`",
                    "IN must be followed by a parenthesised list, e.g. x IN (1, 2)",
                )
            opener = self.advance()
            self.enter(opener)
            options = self.expr_list()
            close = self.expect_close(opener)
            self.depth -= 1
            if not options:
                raise self.where.error(in_token.start, "IN 后面的括号中至少要有一个候选值", "IN needs at least one option")
            return self.count(Member(left.start, close.end, needle=left, options=options, negated=negated))
        if self.token.kind is Kind.OP and self.token.text in COMPARE_OPS:
            op_token = self.advance()
            right = self.additive()
            node = Compare(left.start, right.end, op=op_token.text, left=left, right=right,
                           op_start=op_token.start, op_end=op_token.end)
            if self.token.kind is Kind.OP and self.token.text in COMPARE_OPS:
                raise self.where.error(
                    self.token.start,
                    "比较不能连写(如 `a < b < c`)；请写成 `a < b AND b < c`",
                    "comparisons cannot be chained; write a < b AND b < c",
                )
            return self.count(node)
        return left

    def additive(self) -> Node:
        first = self.term()
        if not self.is_op("+", "-"):
            return first
        terms: list[tuple[str, Node]] = [("+", first)]
        while self.is_op("+", "-"):
            sign = self.advance().text
            terms.append((sign, self.term()))
        return self.count(Sum(first.start, terms[-1][1].end, terms=terms))

    def term(self) -> Node:
        first = self.unary()
        if not self.is_op("*", "/"):
            return first
        factors: list[tuple[str, Node]] = [("*", first)]
        while self.is_op("*", "/"):
            op = self.advance().text
            factors.append((op, self.unary()))
        return self.count(Product(first.start, factors[-1][1].end, factors=factors))

    def unary(self) -> Node:
        if self.is_op("-", "+"):
            token = self.advance()
            self.enter(token)
            operand = self.unary()
            self.depth -= 1
            if token.text == "+":
                return operand
            if isinstance(operand, NumberLit):
                # -5 is a literal, so that `x / -0` is still caught as a literal zero divisor
                return NumberLit(token.start, operand.end, value=-operand.value)
            return self.count(Negate(token.start, operand.end, operand=operand))
        return self.primary()

    def primary(self) -> Node:
        token = self.token
        if token.kind is Kind.NUMBER:
            self.advance()
            assert isinstance(token.value, Decimal)
            return self.count(NumberLit(token.start, token.end, value=token.value))
        if token.kind is Kind.STRING:
            self.advance()
            return self.count(TextLit(token.start, token.end, value=str(token.value)))
        if self.is_op("("):
            self.advance()
            self.enter(token)
            node = self.or_expr()
            close = self.expect_close(token)
            self.depth -= 1
            # keep the brackets in the span so explain() labels read as written
            node.start, node.end = token.start, close.end
            return node
        if token.kind is Kind.NAME:
            upper = token.text.upper()
            follows_bracket = self.peek().kind is Kind.OP and self.peek().text == "("
            if not token.quoted and follows_bracket and upper not in ("TRUE", "FALSE", "NOT"):
                return self.call(token)
            if not token.quoted and upper in KEYWORDS:
                if upper in ("TRUE", "FALSE"):
                    self.advance()
                    return self.count(BoolLit(token.start, token.end, value=upper == "TRUE"))
                raise self.where.error(
                    token.start,
                    f"这里缺少一个值或字段，却遇到关键字 `{token.value}`",
                    f"expected a value but found keyword `{token.value}`",
                )
            self.advance()
            return self.count(FieldRef(token.start, token.end, name=str(token.value), lookup=token.text))
        if token.kind is Kind.END:
            raise self.where.error(token.start, "公式不完整: 结尾缺少一个值或字段", "formula ends where a value was expected")
        raise self.where.error(
            token.start,
            f"这里缺少一个值或字段，却遇到 {self.describe(token)}",
            f"expected a value or field but found {self.describe_en(token)}",
        )

    def call(self, name_token: Token) -> Node:
        self.advance()
        opener = self.advance()
        self.enter(name_token)
        args = self.expr_list()
        upper = name_token.text.upper()
        close = self.expect_close(opener, f"（{upper} 的参数列表）", f" (arguments of {upper})")
        self.depth -= 1
        if upper in ("AND", "OR") and len(args) >= 1:
            # Excel habit: AND(a, b) means a AND b
            return self.count(Logic(name_token.start, close.end, op=upper, items=args))
        if upper == "IN" and len(args) >= 2:
            return self.count(Member(name_token.start, close.end, needle=args[0], options=args[1:]))
        return self.count(Call(name_token.start, close.end, name=upper, args=args, name_end=name_token.end))

    def expr_list(self) -> list[Node]:
        items: list[Node] = []
        if self.is_op(")"):
            return items
        items.append(self.or_expr())
        while self.is_op(","):
            comma = self.advance()
            if self.is_op(")", ","):
                raise self.where.error(comma.start, "多余的逗号: 逗号后面缺少参数", "a comma is followed by no argument")
            items.append(self.or_expr())
        return items


def parse(source: str, where: SourceMap) -> Node:
    """Parse ``source`` into a syntax tree, raising FormulaError with the position."""
    return Parser(source, where).parse()
