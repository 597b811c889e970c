//! The compiled, typed form of a rule.

/// Static type of an expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// TRUE / FALSE.
    Bool,
    /// 64-bit integer.
    Int,
    /// Exact minor units.
    Money,
    /// Double.
    Float,
    /// Text.
    Str,
    /// Milliseconds since the epoch, UTC.
    Ts,
    /// Milliseconds.
    Interval,
    /// The NULL literal, before coercion.
    Null,
}

impl Ty {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Ty::Bool => "boolean",
            Ty::Int => "integer",
            Ty::Money => "money",
            Ty::Float => "float",
            Ty::Str => "string",
            Ty::Ts => "timestamp",
            Ty::Interval => "interval",
            Ty::Null => "NULL",
        }
    }

    /// Integer, money or float.
    pub fn is_numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Money | Ty::Float)
    }
}

/// A runtime value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// NULL.
    Null,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Minor units.
    Money(i64),
    /// Double.
    Float(f64),
    /// Text.
    Str(std::sync::Arc<str>),
    /// Timestamp, ms.
    Ts(i64),
    /// Interval, ms.
    Interval(i64),
}

/// Base aggregates a rule can read directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// Net spend.
    Ltv,
    /// Purchases only.
    GrossSpend,
    /// Refunds.
    Refunded,
    /// Largest purchase.
    MaxOrder,
    /// ltv / orders.
    Aov,
    /// Purchase count.
    Orders,
    /// Refund count.
    Refunds,
    /// Items bought.
    Items,
    /// Largest quantity in one order.
    MaxQuantity,
    /// First purchase time.
    FirstPurchaseAt,
    /// Last purchase time.
    LastPurchaseAt,
    /// Last refund time.
    LastRefundAt,
    /// Distinct categories.
    DistinctCategories,
    /// Distinct products.
    DistinctProducts,
}

impl Field {
    /// All fields with their rule-language names.
    pub const ALL: [(&'static str, Field); 14] = [
        ("ltv", Field::Ltv),
        ("gross_spend", Field::GrossSpend),
        ("refunded", Field::Refunded),
        ("max_order", Field::MaxOrder),
        ("aov", Field::Aov),
        ("orders", Field::Orders),
        ("refunds", Field::Refunds),
        ("items", Field::Items),
        ("max_quantity", Field::MaxQuantity),
        ("first_purchase_at", Field::FirstPurchaseAt),
        ("last_purchase_at", Field::LastPurchaseAt),
        ("last_refund_at", Field::LastRefundAt),
        ("distinct_categories", Field::DistinctCategories),
        ("distinct_products", Field::DistinctProducts),
    ];

    /// Type of the field.
    pub fn ty(self) -> Ty {
        match self {
            Field::Ltv | Field::GrossSpend | Field::Refunded | Field::MaxOrder | Field::Aov => {
                Ty::Money
            }
            Field::FirstPurchaseAt | Field::LastPurchaseAt | Field::LastRefundAt => Ty::Ts,
            _ => Ty::Int,
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// =
    Eq,
    /// <> / !=
    Ne,
    /// <
    Lt,
    /// <=
    Le,
    /// >
    Gt,
    /// >=
    Ge,
}

/// Arithmetic operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArithOp {
    /// +
    Add,
    /// -
    Sub,
    /// *
    Mul,
    /// /
    Div,
    /// %
    Mod,
}

/// Numeric conversions inserted by the type checker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cast {
    /// Integer currency units to minor units.
    IntToMoney,
    /// Integer to float.
    IntToFloat,
    /// Minor units to float currency units.
    MoneyToFloat,
}

/// A compiled expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// A constant.
    Lit(Value),
    /// A base aggregate.
    Field(Field),
    /// The engine clock.
    Now,
    /// Declared trait by index.
    Trait(usize),
    /// Scalar accumulator by index (count/spend/first/last).
    Acc(usize, Ty),
    /// Windowed count (`within`): history index, lookback ms.
    WindowCount(usize, i64),
    /// Windowed net spend (`within`): history index, lookback ms.
    WindowSpend(usize, i64),
    /// `purchased_in_month(m[, y])`.
    PurchasedInMonth(Box<Expr>, Option<Box<Expr>>),
    /// Calendar month of a timestamp.
    Month(Box<Expr>),
    /// Calendar year of a timestamp.
    Year(Box<Expr>),
    /// Membership of a segment (node index).
    InSegment(usize),
    /// Stage name of a lifecycle (node index).
    Stage(usize),
    /// First non-null.
    Coalesce(Vec<Expr>),
    /// Boolean NOT.
    Not(Box<Expr>),
    /// Boolean AND.
    And(Box<Expr>, Box<Expr>),
    /// Boolean OR.
    Or(Box<Expr>, Box<Expr>),
    /// Comparison of two operands of one type.
    Cmp(CmpOp, Box<Expr>, Box<Expr>),
    /// Arithmetic with a result type.
    Arith(ArithOp, Box<Expr>, Box<Expr>, Ty),
    /// Unary minus.
    Neg(Box<Expr>),
    /// IS NULL (false) / IS NOT NULL (true).
    IsNull(Box<Expr>, bool),
    /// IS TRUE / IS FALSE (expected value), negated.
    IsBool(Box<Expr>, bool, bool),
    /// Numeric conversion.
    Cast(Cast, Box<Expr>),
}

impl Expr {
    /// True when the expression is NULL whatever the state and the clock
    /// (a NULL literal, or arithmetic, a cast or a calendar part of one), so a
    /// comparison with it can never be true.
    pub fn always_null(&self) -> bool {
        match self {
            Expr::Lit(Value::Null) => true,
            Expr::Arith(_, a, b, _) => a.always_null() || b.always_null(),
            Expr::Neg(x) | Expr::Cast(_, x) | Expr::Month(x) | Expr::Year(x) => x.always_null(),
            Expr::Coalesce(items) => items.iter().all(Expr::always_null),
            _ => false,
        }
    }
}
