"""Seeded synthetic Shanghai enterprise registry records (企业基本信息), vectorised with numpy.

Every value of a row is a pure function of ``(seed, id)``: random draws come from a counter-based hash of the
row id rather than from a sequential generator, so the same row is produced whatever ``batch_rows`` or
``start_id`` a caller uses, and a later ``start_id`` extends a table without rewriting it.

USCCs (GB 32100) and ID numbers (GB 11643) carry correct check characters; the USCC's embedded organisation
code (GB 11714) carries its own. USCCs are unique for ids below 10^8: the organisation code is a bijection of
the id, not a random draw. Timestamps are spread over the three years before ``as_of``, which defaults to a
fixed instant so that output stays deterministic (and older than any ``now()`` a mutation writes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_AS_OF = datetime(2026, 1, 1, tzinfo=SHANGHAI)

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK_CHARS = "10X98765432"


# --- check characters: the plain formulas, then array versions over ASCII byte matrices -------------------

def uscc_check_char(first17: str) -> str:
    """Check character (position 18) of a unified social credit code."""
    total = sum(USCC_ALPHABET.index(char) * weight for char, weight in zip(first17, USCC_WEIGHTS, strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31]


def organization_code_check_char(body8: str) -> str:
    """Check character (9th) of a GB 11714 organisation code; body characters are valued base 36."""
    total = sum(int(char, 36) * weight for char, weight in zip(body8, ORG_CODE_WEIGHTS, strict=True))
    check = 11 - total % 11
    return {10: "X", 11: "0"}.get(check, str(check))


def id_check_char(first17: str) -> str:
    """Check character of an 18-character resident ID number (ISO 7064 MOD 11-2)."""
    total = sum(int(char) * weight for char, weight in zip(first17, ID_WEIGHTS, strict=True))
    return ID_CHECK_CHARS[total % 11]


def _lookup_table(mapping: dict[str, int]) -> np.ndarray:
    table = np.full(128, -1, dtype=np.int64)  # -1 poisons any sum over a character outside the mapping
    for char, value in mapping.items():
        table[ord(char)] = value
    return table


_USCC_VALUE = _lookup_table({c: i for i, c in enumerate(USCC_ALPHABET)})
_BASE36_VALUE = _lookup_table({c: int(c, 36) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"})
_USCC_ALPHABET_BYTES = np.frombuffer(USCC_ALPHABET.encode(), dtype=np.uint8)
_ORG_CHECK_BYTES = np.frombuffer(b"?123456789X0", dtype=np.uint8)  # indexed by 11 - sum % 11, i.e. 1..11
_ID_CHECK_BYTES = np.frombuffer(ID_CHECK_CHARS.encode(), dtype=np.uint8)


def uscc_check_chars(first17: np.ndarray) -> np.ndarray:
    """Check bytes for an (n, 17) uint8 matrix of ASCII USCC prefixes."""
    total = _USCC_VALUE[first17] @ np.array(USCC_WEIGHTS, dtype=np.int64)
    return _USCC_ALPHABET_BYTES[(31 - total % 31) % 31]


def organization_code_check_chars(body8: np.ndarray) -> np.ndarray:
    """Check bytes for an (n, 8) uint8 matrix of ASCII organisation-code bodies."""
    total = _BASE36_VALUE[body8] @ np.array(ORG_CODE_WEIGHTS, dtype=np.int64)
    return _ORG_CHECK_BYTES[11 - total % 11]


def id_check_chars(first17: np.ndarray) -> np.ndarray:
    """Check bytes for an (n, 17) uint8 matrix of ASCII ID-number prefixes."""
    total = (first17.astype(np.int64) - ord("0")) @ np.array(ID_WEIGHTS, dtype=np.int64)
    return _ID_CHECK_BYTES[total % 11]


# --- word pools (weights are relative; realism over precision) ----------------------------------------------

# (division code, district, weight for enterprise registrations, roads)
DISTRICTS: tuple[tuple[str, str, float, tuple[str, ...]], ...] = (
    ("310101", "黄浦区", 4, ("南京东路", "淮海中路", "西藏中路", "延安东路", "中山南路", "河南南路")),
    ("310104", "徐汇区", 5, ("漕溪北路", "肇嘉浜路", "宜山路", "虹桥路", "龙华中路", "田林路")),
    ("310105", "长宁区", 4, ("延安西路", "天山路", "仙霞路", "长宁路", "定西路", "古北路")),
    ("310106", "静安区", 5, ("南京西路", "延安中路", "共和新路", "江场路", "北京西路", "大统路")),
    ("310107", "普陀区", 4, ("中山北路", "长寿路", "真北路", "曹杨路", "武宁路", "金沙江路")),
    ("310109", "虹口区", 3, ("四川北路", "大连路", "曲阳路", "东大名路", "海伦路", "西江湾路")),
    ("310110", "杨浦区", 4, ("四平路", "黄兴路", "国定路", "控江路", "长阳路", "政立路")),
    ("310112", "闵行区", 9, ("沪闵路", "莘庄路", "七莘路", "虹井路", "都市路", "剑川路")),
    ("310113", "宝山区", 7, ("牡丹江路", "友谊路", "沪太路", "蕰川路", "同济路", "上大路")),
    ("310114", "嘉定区", 9, ("博乐路", "城中路", "曹安公路", "嘉松北路", "叶城路", "墨玉路")),
    ("310115", "浦东新区", 18, ("世纪大道", "张江路", "陆家嘴环路", "浦东南路", "川沙路", "金科路", "龙阳路")),
    ("310116", "金山区", 5, ("卫零路", "龙航路", "亭卫公路", "金山大道", "蒙山路")),
    ("310117", "松江区", 7, ("中山中路", "人民北路", "荣乐东路", "新松江路", "文诚路")),
    ("310118", "青浦区", 6, ("公园路", "外青松公路", "华浦路", "城中北路", "盈港东路")),
    ("310120", "奉贤区", 7, ("南桥路", "解放中路", "环城东路", "金海公路", "望园路")),
    ("310151", "崇明区", 5, ("八一路", "东门路", "陈海公路", "北沿公路", "南门路")),
)
_SUBURBAN_WEIGHTS = [w if code in {"310116", "310117", "310118", "310120", "310151", "310114"} else 0.0
                     for code, _, w, _ in DISTRICTS]  # farmers' cooperatives sit in the rural districts
# ID numbers keep the code in force when issued, so retired Shanghai codes still appear on valid cards
ID_DIVISIONS: tuple[tuple[str, float], ...] = tuple((code, w) for code, _, w, _ in DISTRICTS) + (
    ("310102", 2), ("310103", 3), ("310108", 4), ("310225", 1), ("310230", 1))

# (USCC authority+category, weight): enterprises, individual businesses, farmers' cooperatives
USCC_KINDS: tuple[tuple[str, float], ...] = (("91", 93.0), ("92", 5.5), ("93", 1.5))
# trade names (字号) of two characters; a quarter of companies join two of them
BRANDS = (
    "华信", "东方", "申达", "浦江", "中兴", "宏达", "金桥", "新华", "联创", "恒通", "鼎盛", "永安", "锦江", "天成", "瑞丰",
    "嘉禾", "博远", "众诚", "海纳", "启明", "凯达", "盛世", "荣昌", "长江", "星辰", "云帆", "智汇", "泰和", "安信", "德润",
    "银河", "蓝天", "优品", "同创", "祥瑞", "兴业", "卓越", "远景", "新港", "华夏", "中联", "润泽", "鑫源", "益民", "万通",
    "高科", "信诺", "宝丰", "金穗", "振华", "源泰", "东升", "亿达", "百川", "易达", "佳禾", "沪光", "申美",
)
# (word in the name, industry class of GB/T 4754, weight)
COMPANY_TRADES: tuple[tuple[str, str, float], ...] = (
    ("科技", "科技推广和应用服务业", 14), ("信息技术", "软件和信息技术服务业", 8), ("网络科技", "互联网和相关服务", 5),
    ("贸易", "批发业", 14), ("实业", "商务服务业", 6), ("企业管理咨询", "商务服务业", 5), ("供应链管理", "商务服务业", 3),
    ("餐饮管理", "餐饮业", 5), ("建筑工程", "土木工程建筑业", 4), ("装饰工程", "建筑装饰、装修和其他建筑业", 4),
    ("物流", "装卸搬运和仓储业", 4), ("电子", "计算机、通信和其他电子设备制造业", 3), ("机械设备", "通用设备制造业", 3),
    ("医药科技", "医药制造业", 2), ("文化传媒", "文化艺术业", 4), ("广告", "商务服务业", 3), ("投资管理", "资本市场服务", 2),
    ("房地产开发", "房地产业", 1), ("物业管理", "房地产业", 2), ("环保科技", "生态保护和环境治理业", 2),
    ("汽车销售", "零售业", 2), ("服饰", "纺织服装、服饰业", 2), ("食品", "食品制造业", 2), ("化工", "化学原料和化学制品制造业", 1),
)
COMPANY_SUFFIXES: tuple[tuple[str, float], ...] = (("有限公司", 93), ("股份有限公司", 5), ("有限责任公司", 2))
SHOP_TRADES: tuple[tuple[str, str, float], ...] = (
    ("便利店", "零售业", 5), ("餐饮店", "餐饮业", 5), ("小吃店", "餐饮业", 4), ("五金店", "零售业", 2), ("水果店", "零售业", 2),
    ("服装店", "零售业", 2), ("理发店", "居民服务业", 2), ("汽车修理店", "机动车、电子产品和日用产品修理业", 1))
COOPERATIVE_TRADES: tuple[tuple[str, str, float], ...] = (
    ("蔬菜", "农业", 4), ("果蔬", "农业", 3), ("水稻", "农业", 3), ("西甜瓜", "农业", 2), ("葡萄", "农业", 2),
    ("水产养殖", "渔业", 2), ("农机", "农、林、牧、渔专业及辅助性活动", 1))
STATUSES: tuple[tuple[str, float], ...] = (("存续", 55), ("在业", 25), ("注销", 12), ("吊销", 6), ("迁出", 2))
# Shanghai's common surnames (徐 沈 陆 顾 钱 施 ...) weigh more here than in the national ranking
_SURNAME_WEIGHTS = {"张": 7.0, "王": 6.8, "陈": 5.0, "李": 4.8, "徐": 3.0, "朱": 2.6, "周": 2.5, "沈": 2.0, "陆": 2.0,
    "顾": 1.6, "刘": 3.5, "杨": 2.6, "黄": 2.0, "吴": 2.2, "赵": 1.5, "孙": 1.5, "马": 1.0, "胡": 1.4, "郭": 0.9,
    "何": 0.9, "高": 0.9, "林": 0.9, "罗": 0.7, "郑": 0.8, "梁": 0.6, "谢": 0.7, "宋": 0.6, "唐": 0.7, "许": 0.8,
    "韩": 0.5, "冯": 0.6, "邓": 0.4, "曹": 0.7, "彭": 0.4, "曾": 0.4, "肖": 0.4, "袁": 0.5, "潘": 0.6, "蒋": 0.6,
    "蔡": 0.6, "杜": 0.4, "叶": 0.6, "程": 0.4, "钱": 0.7, "施": 0.6, "姚": 0.6, "汤": 0.4, "金": 0.6, "范": 0.5,
    "倪": 0.4, "邱": 0.3, "卢": 0.3, "丁": 0.4, "任": 0.3, "欧阳": 0.05, "司马": 0.01, "上官": 0.01, "诸葛": 0.01}
SURNAMES: tuple[tuple[str, float], ...] = tuple(_SURNAME_WEIGHTS.items())
MALE_GIVEN = tuple("伟强磊军勇杰涛斌超明刚平辉鹏华飞鑫波宇浩凯健俊帆旭宁龙林阳建国志文海峰东晨荣忠嘉")
FEMALE_GIVEN = tuple("芳娜敏静丽艳娟霞秀玲婷雪慧燕红琳倩颖洁晶莉萍琴佳欣怡玉梅月蕾")


# --- row-keyed randomness -------------------------------------------------------------------------------------

def _splitmix64(values: np.ndarray) -> np.ndarray:
    z = values + np.uint64(0x9E3779B97F4A7C15)  # uint64 arrays wrap on overflow, which the mixer relies on
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _seed_constant(seed: int, salt: int) -> int:
    return int(_splitmix64(np.array([seed * 1_000_003 + salt], dtype=np.uint64))[0])


class RowDraws:
    """Uniform draws in [0, 1) keyed by (seed, row id, stream): independent of how rows are batched."""

    def __init__(self, ids: np.ndarray, seed: int) -> None:
        self._row_keys = _splitmix64(ids.astype(np.uint64) * np.uint64(0xD1B54A32D192ED03)
                                     + np.uint64(_seed_constant(seed, 0)))

    def uniform(self, stream: int) -> np.ndarray:
        stream_offset = np.uint64(stream * 0x9E3779B97F4A7C15 % 2**64)  # in Python ints: numpy scalars warn on wrap
        bits = _splitmix64(self._row_keys + stream_offset)
        return (bits >> np.uint64(11)).astype(np.float64) * 2.0**-53


def weighted_pick(uniform: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Indices into ``weights`` chosen with the given relative weights."""
    cumulative = np.cumsum(np.asarray(weights, dtype=np.float64))
    picked = np.searchsorted(cumulative / cumulative[-1], uniform, side="right")
    return np.minimum(picked, len(cumulative) - 1)


def _take(pool: Sequence[str], indices: np.ndarray) -> pa.Array:
    return pa.array(pool, pa.string()).take(pa.array(indices, pa.int32()))


def _join(*parts: pa.Array | str) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _ascii_strings(matrix: np.ndarray) -> pa.Array:
    """An Arrow string array over the rows of an (n, width) ASCII byte matrix, without per-row objects."""
    rows, width = matrix.shape
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    data = np.ascontiguousarray(matrix, dtype=np.uint8)
    return pa.Array.from_buffers(pa.string(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def _decimal_digits(values: np.ndarray, width: int) -> np.ndarray:
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values.astype(np.int64)[:, None] // powers) % 10 + ord("0")).astype(np.uint8)


def _code_bytes(codes: Sequence[str]) -> np.ndarray:
    return np.frombuffer("".join(codes).encode("ascii"), dtype=np.uint8).reshape(len(codes), -1)


# --- column builders shared with samples.loaders.mutate_postgres ----------------------------------------------

def pick_statuses(uniform: np.ndarray) -> pa.Array:
    return _take([s for s, _ in STATUSES], weighted_pick(uniform, [w for _, w in STATUSES]))


def pick_capital_cents(u_round: np.ndarray, u_amount: np.ndarray, u_normal: np.ndarray) -> np.ndarray:
    """Registered capital in hundredths of 万元: mostly round sums, the rest log-normal around 200万."""
    round_sums = np.array([10, 30, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 10000], dtype=np.int64)
    round_pick = round_sums[weighted_pick(u_amount, [8, 4, 12, 25, 10, 8, 14, 10, 4, 2, 2, 1])] * 100
    normal = np.sqrt(-2.0 * np.log1p(-u_amount)) * np.cos(2.0 * np.pi * u_normal)  # Box-Muller
    log_normal = np.clip(np.round(np.exp(np.log(200.0) + 1.5 * normal) * 100), 100, 10**10)
    return np.where(u_round < 0.7, round_pick, log_normal.astype(np.int64))


def capital_array(cents: np.ndarray) -> pa.Array:
    """decimal128(18, 2) built from the unscaled integers directly, so amounts stay exact."""
    words = np.zeros((len(cents), 2), dtype=np.int64)  # little-endian 128-bit: low word, then high word
    words[:, 0] = cents  # amounts are positive, so the high word stays 0
    return pa.Array.from_buffers(pa.decimal128(18, 2), len(cents), [None, pa.py_buffer(words)])


def pick_addresses(district_index: np.ndarray, u_road: np.ndarray, u_number: np.ndarray) -> pa.Array:
    """上海市 + the district of each index + one of its roads + a house number."""
    roads = [road for *_, district_roads in DISTRICTS for road in district_roads]
    road_counts = np.array([len(d[3]) for d in DISTRICTS])
    road_offsets = np.concatenate([[0], np.cumsum(road_counts)[:-1]])
    road_index = road_offsets[district_index] + (u_road * road_counts[district_index]).astype(np.int64)
    numbers = pc.cast(pa.array(1 + (u_number**2 * 1500).astype(np.int64)), pa.string())  # low numbers are common
    return _join("上海市", _take([d[1] for d in DISTRICTS], district_index), _take(roads, road_index), numbers, "号")


# --- the generator ------------------------------------------------------------------------------------------

_FIELD_LABELS = {
    "id": "主键", "uscc": "统一社会信用代码", "name": "企业名称", "legal_rep": "法定代表人", "legal_rep_id": "法定代表人身份证号",
    "reg_capital": "注册资本(万元)", "established": "成立日期", "status": "登记状态", "address": "住所",
    "industry": "行业", "updated_at": "更新时间"}


def enterprise_schema() -> pa.Schema:
    types = {"id": pa.int64(), "reg_capital": pa.decimal128(18, 2), "established": pa.date32(),
             "updated_at": pa.timestamp("us", tz="Asia/Shanghai")}
    return pa.schema([pa.field(name, types.get(name, pa.string()), nullable=False, metadata={"label": label})
                      for name, label in _FIELD_LABELS.items()])


def _days(value: str) -> int:
    return int(np.datetime64(value, "D").astype(np.int64))


def _org_code_bodies(ids: np.ndarray, seed: int, is_new_style: np.ndarray) -> np.ndarray:
    """(n, 8) ASCII organisation-code bodies, a bijection of the id so codes never repeat below 10^8 ids.

    Codes issued before the 2015 reform are numeric; newer ones are "MA" + 6 characters of the USCC alphabet.
    """
    numeric_mod, new_mod = 10**8, 31**6
    numeric_mult = _seed_constant(seed, 1) % (numeric_mod // 10) * 10 + 3  # ends in 3: coprime with 10^8
    new_mult = _seed_constant(seed, 2) % (new_mod - 1) // 31 * 31 + 7  # not a multiple of 31: coprime with 31^6
    ids64 = ids.astype(np.uint64)
    numeric_shift, new_shift = _seed_constant(seed, 3) % numeric_mod, _seed_constant(seed, 4) % new_mod
    numeric = (ids64 * np.uint64(numeric_mult) + np.uint64(numeric_shift)) % np.uint64(numeric_mod)
    new = (ids64 * np.uint64(new_mult) + np.uint64(new_shift)) % np.uint64(new_mod)
    new_digits = (new[:, None] // (np.uint64(31) ** np.arange(5, -1, -1, dtype=np.uint64))) % np.uint64(31)
    new_bodies = np.concatenate([np.broadcast_to(np.frombuffer(b"MA", dtype=np.uint8), (len(ids), 2)),
                                 _USCC_ALPHABET_BYTES[new_digits.astype(np.int64)]], axis=1)
    return np.where(is_new_style[:, None], new_bodies, _decimal_digits(numeric.astype(np.int64), 8))


def _people(draws: RowDraws) -> tuple[pa.Array, pa.Array, np.ndarray]:
    """Legal representatives: names, ID numbers, and birth days (days since 1970) for age checks."""
    is_male = draws.uniform(20) < 0.72
    surnames = _take([s for s, _ in SURNAMES], weighted_pick(draws.uniform(21), [w for _, w in SURNAMES]))
    pool, pool_size = MALE_GIVEN + FEMALE_GIVEN, np.where(is_male, len(MALE_GIVEN), len(FEMALE_GIVEN))
    pool_start = np.where(is_male, 0, len(MALE_GIVEN))
    first = pool_start + (draws.uniform(22) * pool_size).astype(np.int64)
    second = pool_start + (draws.uniform(23) * pool_size).astype(np.int64)
    has_second = draws.uniform(24) < 0.8
    names = _join(surnames, _take(pool, first), _take(("",) + pool, np.where(has_second, second + 1, 0)))

    # ages cluster around births in the mid-1970s: the mean of two uniforms is triangular
    first_day, last_day = _days("1950-01-01"), _days("2000-12-31")
    birth_days = first_day + ((draws.uniform(25) + draws.uniform(26)) / 2 * (last_day - first_day + 1)).astype(np.int64)
    birth = birth_days.astype("datetime64[D]")
    year = birth.astype("datetime64[Y]").astype(np.int64) + 1970
    month = birth.astype("datetime64[M]").astype(np.int64) % 12 + 1
    day = (birth - birth.astype("datetime64[M]")).astype(np.int64) + 1
    sequence = (draws.uniform(27) * 497).astype(np.int64) * 2 + np.where(is_male, 1, 2)  # odd = male; < 996
    division_index = weighted_pick(draws.uniform(28), [w for _, w in ID_DIVISIONS])
    divisions = _code_bytes([c for c, _ in ID_DIVISIONS])[division_index]
    first17 = np.concatenate([divisions, _decimal_digits(year * 10000 + month * 100 + day, 8),
                              _decimal_digits(sequence, 3)], axis=1)
    id_numbers = np.concatenate([first17, id_check_chars(first17)[:, None]], axis=1)
    return names, _ascii_strings(id_numbers), birth_days


def generate_enterprise_batch(*, first_id: int, rows: int, seed: int = 0,
                              as_of: datetime = DEFAULT_AS_OF) -> pa.RecordBatch:
    """Rows with ids ``first_id .. first_id + rows - 1`` as one record batch."""
    if as_of.tzinfo is None:
        raise ValueError("as_of must be timezone-aware, e.g. datetime(..., tzinfo=ZoneInfo('Asia/Shanghai'))")
    ids = np.arange(first_id, first_id + rows, dtype=np.int64)
    draws = RowDraws(ids, seed)
    kind = weighted_pick(draws.uniform(1), [w for _, w in USCC_KINDS])
    is_company, is_shop = kind == 0, kind == 1
    district = np.where(kind == 2, weighted_pick(draws.uniform(2), _SUBURBAN_WEIGHTS),
                        weighted_pick(draws.uniform(2), [d[2] for d in DISTRICTS]))

    legal_reps, legal_rep_ids, birth_days = _people(draws)
    # registrations grow over time (u ** 0.6 leans late); a representative is at least 18 when registering
    as_of_day = int(np.datetime64(as_of.astimezone(SHANGHAI).date(), "D").astype(np.int64))
    first_day = _days("1992-01-01")
    established = first_day + (draws.uniform(3) ** 0.6 * (as_of_day - first_day)).astype(np.int64)
    established = np.minimum(np.maximum(established, birth_days + 6575 + (draws.uniform(4) * 3000).astype(np.int64)),
                             as_of_day - 1)

    new_style = (established >= _days("2015-10-01")) | ~is_company
    bodies = _org_code_bodies(ids, seed, new_style)
    kinds = _code_bytes([k for k, _ in USCC_KINDS])[kind]
    first17 = np.concatenate([kinds, _code_bytes([d[0] for d in DISTRICTS])[district], bodies,
                              organization_code_check_chars(bodies)[:, None]], axis=1)
    uscc = _ascii_strings(np.concatenate([first17, uscc_check_chars(first17)[:, None]], axis=1))

    brand_index = (draws.uniform(5) * len(BRANDS)).astype(np.int64)
    second_brand = np.where(draws.uniform(6) < 0.25, 1 + (draws.uniform(7) * len(BRANDS)).astype(np.int64), 0)
    brand = _join(_take(BRANDS, brand_index), _take(("",) + BRANDS, second_brand))
    company_trade = weighted_pick(draws.uniform(8), [t[2] for t in COMPANY_TRADES])
    suffix = weighted_pick(draws.uniform(9), [w for _, w in COMPANY_SUFFIXES])
    shop_trade = weighted_pick(draws.uniform(8), [t[2] for t in SHOP_TRADES])
    coop_trade = weighted_pick(draws.uniform(8), [t[2] for t in COOPERATIVE_TRADES])
    district_names = _take([d[1] for d in DISTRICTS], district)
    company_name = _join("上海", brand, _take([t[0] for t in COMPANY_TRADES], company_trade),
                         _take([s for s, _ in COMPANY_SUFFIXES], suffix))
    shop_name = _join("上海市", district_names, brand, _take([t[0] for t in SHOP_TRADES], shop_trade))
    coop_name = _join("上海", brand, _take([t[0] for t in COOPERATIVE_TRADES], coop_trade), "专业合作社")
    name = pc.if_else(pa.array(is_company), company_name, pc.if_else(pa.array(is_shop), shop_name, coop_name))
    industry = pc.if_else(pa.array(is_company), _take([t[1] for t in COMPANY_TRADES], company_trade),
                          pc.if_else(pa.array(is_shop), _take([t[1] for t in SHOP_TRADES], shop_trade),
                                     _take([t[1] for t in COOPERATIVE_TRADES], coop_trade)))

    cents = pick_capital_cents(draws.uniform(10), draws.uniform(11), draws.uniform(12))
    cents = np.where(is_company & (suffix == 1), np.maximum(cents * 10, 500 * 100), cents)  # 股份公司 are larger
    cents = np.where(is_shop, 100 + (draws.uniform(13) * 49).astype(np.int64) * 100, cents)  # 个体户: 1-50万

    # updated_at: within the 3 years before as_of, and never before the registration itself
    as_of_us = int(as_of.timestamp() * 1_000_000)
    window_start = as_of_us - 3 * 365 * 86_400_000_000
    # local midnight in Shanghai, a fixed UTC+8 since its last daylight-saving summer (1991)
    established_us = (established * 86_400 - 8 * 3600) * 1_000_000
    earliest = np.maximum(window_start, established_us)
    updated_us = earliest + (draws.uniform(14) * (as_of_us - earliest)).astype(np.int64)

    return pa.RecordBatch.from_arrays([
        pa.array(ids, pa.int64()), uscc, name, legal_reps, legal_rep_ids, capital_array(cents),
        pa.array(established.astype(np.int32), pa.int32()).cast(pa.date32()),
        pick_statuses(draws.uniform(15)),
        pick_addresses(district, draws.uniform(16), draws.uniform(17)), industry,
        pa.array(updated_us, pa.int64()).cast(pa.timestamp("us", tz="Asia/Shanghai")),
    ], schema=enterprise_schema())


def iter_enterprise_batches(*, rows: int, seed: int = 0, batch_rows: int = 100_000, start_id: int = 1,
                            as_of: datetime = DEFAULT_AS_OF) -> Iterator[pa.RecordBatch]:
    """``rows`` enterprises with ids from ``start_id``, in record batches of at most ``batch_rows`` rows."""
    if rows < 0 or batch_rows < 1 or start_id < 1:
        raise ValueError("rows must be >= 0, batch_rows >= 1 and start_id >= 1")
    for offset in range(0, rows, batch_rows):
        yield generate_enterprise_batch(first_id=start_id + offset, rows=min(batch_rows, rows - offset),
                                        seed=seed, as_of=as_of)


def enterprise_table(*, rows: int, seed: int = 0, start_id: int = 1, as_of: datetime = DEFAULT_AS_OF) -> pa.Table:
    """All rows at once: for small samples and tests; stream with ``iter_enterprise_batches`` otherwise."""
    return pa.Table.from_batches(list(iter_enterprise_batches(rows=rows, seed=seed, start_id=start_id, as_of=as_of)),
                                 schema=enterprise_schema())
