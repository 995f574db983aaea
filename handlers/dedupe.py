"""Lead de-duplication: normalised keys and the "is this an old customer?" decision.

Pure functions over plain data, no database. The store keeps ``phone_norm`` and
``company_norm`` (``Lead.phone_norm``, ``Customer.name_norm``) computed with
:func:`normalize_phone` and :func:`normalize_company`, queries the candidates sharing
a key, and hands them to :func:`find_duplicate`, which decides and says why.

Why normalise so hard: the same factory arrives as ``苏州恒锐精密机械有限公司`` from the
web form, ``恒锐精密机械（苏州）有限公司`` from a trade-fair scan and ``恆銳精密機械`` from
a Hong Kong distributor's spreadsheet; the same buyer's phone as ``+86 139-1234-5678``
and ``１３９１２３４５６７８``. Every miss is a second rep calling the same customer.

Traditional→simplified: zhconv is GPL-2.0+, which does not fit our Apache-2.0 licence,
so we ship our own table of the characters common in company and person names
(:data:`_TRAD_SIMP`); characters outside it pass through unchanged.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from nlp.provinces import PROVINCES

__all__ = [
    "DuplicateMatch",
    "LeadKeys",
    "MatchKey",
    "find_duplicate",
    "lead_keys",
    "normalize_company",
    "normalize_contact",
    "normalize_phone",
    "to_simplified",
]

# --------------------------------------------------------------------------- phones

_EXTENSION = re.compile(r"(转|轉|分机|分機|ext\.?|x|#)\s*\d*\s*$", re.IGNORECASE)
_MOBILE = re.compile(r"1[3-9]\d{9}")
# Trunk prefixes: 400/800 service numbers are dialled without area code.
_SERVICE = re.compile(r"[48]00\d{7}")


def _landline(digits: str) -> str | None:
    """``0AREA`` + 7–8 digit local number → ``0AREA-LOCAL``; None if not that shape."""
    if not digits.startswith("0") or digits.startswith("00"):
        return None
    # Beijing 010 and the 02X big cities have 3-digit area codes, everyone else 4.
    area_len = 3 if digits[1] in "12" else 4
    area, local = digits[:area_len], digits[area_len:]
    if len(local) not in (7, 8) or local[0] in "01" or set(local) == {"0"}:
        return None
    return f"{area}-{local}"


def _classify(digits: str, *, international: bool, default_area: str | None) -> str | None:
    if international:
        # +86 numbers drop the trunk 0 of the area code: +86 512 6688 1234.
        if _MOBILE.fullmatch(digits):
            return digits
        return _landline("0" + digits)
    if _MOBILE.fullmatch(digits):
        return digits
    # Old habit: a leading 0 before a mobile number when calling from another city.
    if len(digits) == 12 and digits[0] == "0" and _MOBILE.fullmatch(digits[1:]):
        return digits[1:]
    if _SERVICE.fullmatch(digits):
        return digits
    if digits.startswith("0"):
        return _landline(digits)
    if default_area and len(digits) in (7, 8):
        return _landline(default_area + digits)
    return None


def normalize_phone(raw: str, *, default_area: str | None = None) -> str | None:
    """The canonical form of a Chinese phone number, or None when it is not plausibly one.

    Mobiles come out as 11 digits (``13912345678``), landlines as ``0AREA-LOCAL``
    (``0512-66881234``), 400/800 numbers as 10 digits. ``+86``/``0086``/``86``
    prefixes, spaces, dashes, dots, brackets, full-width digits and extensions
    (``转806``, ``ext. 12``, ``-806`` after a complete number) are removed. A local
    number without area code is accepted only with ``default_area`` (``"0512"``).
    """
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw).strip()
    text = _EXTENSION.sub("", text).strip()
    international = False
    text = text.lstrip("([ ")  # "(+86) 139…" and "(0512) 6688…"
    if text.startswith("+"):
        text = text[1:]
        if not text.lstrip(" (").startswith("86"):
            return None  # a foreign number is not a key we can compare
        international = True
    groups = [g for g in re.split(r"[\s\-.()/\[\]]+", text) if g]
    if not groups or not all(g.isdigit() for g in groups):
        return None
    digits = "".join(groups)
    if digits.startswith("0086"):
        digits, international = digits[4:], True
    elif international or (groups[0] == "86" and len(groups) > 1):
        digits, international = digits[2:], True
    if international and digits.startswith("0"):
        digits = digits[1:]  # "+86 (0)512 …": the trunk 0 written in brackets
    elif digits.startswith("86") and len(digits) == 13 and _MOBILE.fullmatch(digits[2:]):
        digits, international = digits[2:], True
    found = _classify(digits, international=international, default_area=default_area)
    if found is None and len(groups) > 1 and len(groups[-1]) <= 5:
        # "0512-66881234-806": a trailing short group after a complete number is an extension.
        shorter = digits[: len(digits) - len(groups[-1])]
        found = _classify(shorter, international=international, default_area=default_area)
    return found


# --------------------------------------------------------------------------- Chinese text

# Traditional → simplified for characters common in company and person names. Our own
# table (zhconv's is GPL). Pairs "繁简", separated by spaces.
_TRAD_SIMP_PAIRS = """
恆恒 銳锐 機机 業业 電电 氣气 動动 車车 東东 廣广 國国 華华 際际 貿贸 實实 發发 興兴 達达
龍龙 鳳凤 寶宝 鋼钢 鐵铁 鋁铝 銅铜 鑄铸 鍛锻 裝装 備备 設设 計计 製制 術术 藝艺 環环 節节
號号 聯联 網网 絡络 資资 訊讯 導导 體体 軟软 傳传 輸输 輪轮 軸轴 齒齿 閥阀 門门 開开 關关
膠胶 紙纸 織织 紡纺 線线 纖纤 維维 絲丝 綠绿 藍蓝 紅红 黃黄 銀银 錦锦 鴻鸿 億亿 萬万 豐丰
匯汇 滙汇 灣湾 臺台 島岛 蘇苏 廠厂 團团 責责 總总 倉仓 儲储 運运 務务 醫医 藥药 療疗 衛卫
農农 漁渔 礦矿 產产 産产 場场 陽阳 陰阴 長长 慶庆 蘭兰 錫锡 鎮镇 縣县 區区 鄉乡 園园 莊庄
橋桥 樓楼 層层 廈厦 熱热 溫温 測测 試试 驗验 檢检 標标 準准 儀仪 錶表 鐘钟 鑽钻 壓压 鍍镀
塗涂 質质 優优 選选 創创 領领 飛飞 艦舰 輛辆 駕驾 馳驰 騰腾 躍跃 遠远 邁迈 進进 連连 鏈链
條条 紋纹 結结 構构 築筑 纜缆 燈灯 學学 數数 據据 雲云 聰聪 靈灵 視视 聽听 聲声 響响 麥麦
風风 霧雾 護护 鎖锁 鑰钥 廚厨 潔洁 淨净 滌涤 劑剂 礎础 詢询 諮咨 顧顾 問问 貨货 幣币 銷销
購购 買买 賣卖 賽赛 貝贝 財财 費费 貴贵 陳陈 張张 劉刘 楊杨 趙赵 吳吴 鄭郑 孫孙 馬马 許许
鄧邓 馮冯 蔣蒋 韓韩 錢钱 龔龚 葉叶 蕭萧 盧卢 顏颜 歐欧 陸陆 閻阎 譚谭 鍾钟 賴赖 羅罗 韋韦
嚴严 餘余 範范 鄒邹 湯汤 喬乔 賀贺 與与 為为 對对 個个 們们 來来 時时 會会 後后 過过 還还
這这 麼么 從从 見见 種种 樣样 點点 現现 並并 當当 經经 濟济 銘铭 輝辉 燁烨 鈞钧 鍵键 鏡镜
鋒锋 銓铨 鈺钰 瑩莹 顯显 頻频 頭头 額额 題题 類类 顆颗 願愿 順顺 須须 頁页 項项 預预 頓顿
養养 飼饲 飲饮 館馆 飯饭 麵面 魚鱼 鮮鲜 鳥鸟 雞鸡 鴨鸭 鵬鹏 鶴鹤 鷹鹰 麗丽 齊齐 齋斋 龜龟
歲岁 壽寿 樂乐 榮荣 樹树 橫横 檯台 櫃柜 權权 歷历 曆历 氫氢 漢汉 滬沪 濱滨 瀋沈 瑪玛 璽玺
畫画 盤盘 眾众 祿禄 禮礼 禎祯 積积 穩稳 窯窑 競竞 筆笔 簡简 籌筹 糧粮 紀纪 約约 級级 純纯
紗纱 細细 終终 組组 給给 統统 絕绝 綜综 緣缘 編编 練练 縮缩 績绩 繩绳 繪绘 繼继 續续 義义
習习 聖圣 職职 腦脑 舉举 舊旧 艙舱 萊莱 蓋盖 蔭荫 蘋苹 虛虚 衝冲 補补 複复 復复 襯衬 規规
覺觉 觀观 觸触 訂订 訓训 記记 註注 誠诚 誼谊 調调 談谈 論论 諾诺 證证 識识 譜谱 議议 讀读
變变 讓让 貫贯 賓宾 賢贤 贏赢 贊赞 趨趋 跡迹 軍军 軌轨 載载 較较 輕轻 輔辅 轉转 辦办 迴回
邊边 郵邮 釀酿 釋释 針针 釘钉 鈴铃 鉅钜 鉑铂 鉛铅 銲焊 鋅锌 鋪铺 錄录 錨锚 鍋锅 鎂镁 鎢钨
鎳镍 鐳镭 鑒鉴 鑑鉴 閃闪 閣阁 闊阔 隊队 階阶 隱隐 雙双 雜杂 離离 難难 靜静 韻韵 頂顶 飄飘
驅驱 髮发 鬆松 鬥斗 黨党 齡龄 愛爱 態态 慮虑 憶忆 應应 懷怀 戰战 擁拥 擇择 換换 揚扬 損损
搖摇 攝摄 擴扩 擊击 敗败 敵敌 斷断 無无 昇升 晉晋 暉晖 曉晓 書书 極极 槍枪 櫻樱 欄栏 歡欢
殼壳 決决 況况 淺浅 湧涌 滅灭 滿满 漲涨 潤润 澤泽 濃浓 濕湿 濾滤 瀝沥 灑洒 災灾 爐炉 爭争
爾尔 牆墙 獅狮 獎奖 獲获 瓊琼 畢毕 異异 疊叠 盡尽 監监 碼码 確确 礙碍 穀谷 窮穷 簽签 籃篮
粵粤 納纳 紐纽 絨绒 絢绚 綫线 綱纲 緊紧 緒绪 締缔 緯纬 縱纵 繡绣 罰罚 聞闻 肅肃 脈脉 腳脚
膚肤 臟脏 臨临 艷艳 蟲虫 蠶蚕 衆众 裏里 裡里 褲裤 襪袜 親亲 覽览 訪访 詞词 詳详 語语 說说
課课 請请 諸诸 謝谢 譯译 負负 貢贡 販贩 貸贷 賞赏 賬账 賺赚 贈赠 趕赶 軒轩 轄辖 辭辞 遞递
遊游 違违 適适 遺遗 邏逻 鄰邻 醬酱 釣钓 鈔钞 鉤钩 錯错 鏟铲 閉闭 閒闲 間间 閘闸 閩闽 闆板
陣阵 陝陕 隨随 險险 隸隶 雖虽 韌韧 頸颈 飾饰 餅饼 駐驻 騎骑 驚惊 鬧闹 魯鲁 鮑鲍 鳴鸣 鵝鹅
鹽盐 龐庞 贛赣 遼辽 寧宁 夠够 嶺岭 嶼屿 崗岗 岡冈 巖岩 幫帮 帶带 幹干 廢废 廳厅 廬庐 彈弹
徑径 徵征 憲宪 懸悬 戶户 掃扫 捨舍 撥拨 擬拟 擔担 攜携 斬斩 圓圆 圖图 圍围 執执 堅坚 報报
塊块 墊垫 壇坛 壩坝 壯壮 處处 傑杰 偉伟 傢家 僅仅 價价 儉俭 兌兑 兒儿 內内 兩两 冊册 凈净
凱凯 劃划 劍剑 勁劲 勞劳 勢势 勝胜 勵励 勸劝 協协 卻却 厲厉 參参 叢丛 員员 單单 囑嘱 鹼碱
紮扎 氈毡 瓏珑 璣玑 瑋玮 璉琏 珮佩 馨馨 鍊炼 煉炼 燒烧 燦灿 爍烁 犖荦 狀状 獨独 猶犹 瑣琐
營营 縣县 莖茎 薦荐 藍蓝 蘊蕴 蘆芦 蕪芜 蔔卜 諧谐 謀谋 謙谦 講讲 譽誉 豎竖 貳贰 賈贾 賜赐
贖赎 跡迹 踐践 軋轧 輥辊 轎轿 轟轰 辯辩 農农 邁迈 醇醇 鈍钝 鈷钴 鉀钾 鉻铬 銑铣 銻锑 銼锉
鋸锯 錐锥 錳锰 鍬锹 鎬镐 鏜镗 鐓镦 鐺铛 鑠铄 鑾銮 閥阀 闡阐 陘陉 隴陇 雛雏 霽霁 靂雳 韜韬
頌颂 頤颐 顥颢 颯飒 颱台 驛驿 驥骥 鰲鳌 鷗鸥 麒麒 黌黉 齒齿 壺壶 夥伙 奪夺 奮奋 妝妆 婦妇
媽妈 嬰婴 學学 寫写 審审 寶宝 對对 導导 屆届 屬属 峽峡 嶽岳 巒峦 幣币 庫库 廟庙 廣广 弳弪
彌弥 彎弯 徹彻 恥耻 惡恶 惱恼 愷恺 慣惯 慚惭 憑凭 懇恳 懶懒 戲戏 拋抛 挾挟 捲卷 掛挂 採采
揀拣 搗捣 搶抢 摯挚 撐撑 擋挡 擠挤 擺摆 攔拦 攤摊 敘叙 斂敛 晝昼 暢畅 曬晒 朮术 杴锨 棟栋
椏桠 楓枫 楨桢 榪杩 槓杠 槳桨 樁桩 樞枢 機机 檔档 檳槟 檸柠 櫥橱 欖榄 殘残 殺杀 毀毁 氾泛
汙污 沒没 洩泄 涇泾 淒凄 淚泪 淪沦 渦涡 渾浑 湊凑 湯汤 溝沟 滄沧 滯滞 滲渗 滷卤 滾滚 漬渍
漸渐 潑泼 潛潜 澀涩 澗涧 激激 濁浊 濤涛 瀏浏 瀘泸 瀟潇 灘滩 灝灏 炭炭 煙烟 煩烦 燈灯 燙烫
燭烛 爺爷 牘牍 犢犊 狹狭 猙狰 獄狱 獵猎 玀猡 琺珐 瑯琅 璦瑷 甌瓯 甕瓮 畝亩 疇畴 痙痉 瘋疯
療疗 癒愈 皚皑 盜盗 睜睁 矯矫 碩硕 磚砖 礪砺 祕秘 禍祸 稅税 稱称 穌稣 窩窝 竄窜 竅窍
筧笕 篩筛 簍篓 籠笼 籤签 糞粪 糾纠 紉纫 紋纹 紳绅 紹绍 絞绞 絡络 綁绑 綢绸 綸纶 綺绮 緞缎
緝缉 緩缓 緻致 縛缚 縫缝 繃绷 繞绕 繳缴 罈坛 罵骂 羥羟 翹翘 聳耸 肅肃 脅胁 脫脱 腎肾 膩腻
膽胆 臉脸 艱艰 蓮莲 蔥葱 蕩荡 藤藤 蘿萝 虜虏 蝦虾 螢萤 蠟蜡 衊蔑 袞衮 裝装 褸褛 覓觅 訛讹
詐诈 詠咏 該该 誇夸 誌志 誤误 誘诱 誦诵 諒谅 諜谍 謊谎 謎谜 謹谨 譏讥 譚谭 豬猪 貓猫 貞贞
貪贪 貧贫 貶贬 貼贴 貽贻 賄贿 賊贼 賠赔 賦赋 賭赌 賴赖 贅赘 贍赡 趙赵 踴踊 蹤踪 軀躯
輩辈 輯辑 輿舆 轍辙 辮辫 迫迫 逕迳 週周 遙遥 遜逊 鄖郧 醞酝 醜丑 釐厘 鈕钮 鈣钙 銬铐 銷销
鋤锄 錘锤 鍰锾 鎊镑 鏤镂 鐮镰 鐲镯 鑲镶 鑼锣 鑿凿 閨闺 閱阅 闖闯 陰阴 隕陨 雋隽 雛雏 雷雷
霑沾 靦腼 鞏巩 韁缰 頒颁 頗颇 頰颊 頹颓 顛颠 顫颤 颳刮 餓饿 餘余 餵喂 饋馈 饒饶 駁驳 駛驶
駱骆 駿骏 騷骚 驕骄 驢驴 骯肮 鬍胡 鬱郁 魂魂 鯉鲤 鯨鲸 鰻鳗 鱷鳄 鳩鸠 鴉鸦 鴿鸽 鵲鹊 鶯莺
鸚鹦 麩麸 黴霉 鼴鼹 齜龇 齣出
"""


def _build_trad_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for pair in _TRAD_SIMP_PAIRS.split():
        if len(pair) != 2:
            raise ValueError(f"bad traditional/simplified pair {pair!r}")
        trad, simp = pair[0], pair[1]
        if trad != simp:
            table[ord(trad)] = simp
    return table


_TRAD_SIMP: dict[int, str] = _build_trad_table()


def to_simplified(text: str) -> str:
    """Map the traditional characters of our table to simplified ones; others unchanged."""
    return text.translate(_TRAD_SIMP)


def _fold(text: str) -> str:
    """Width, case, traditional/simplified and whitespace folding shared by all keys."""
    text = unicodedata.normalize("NFKC", text or "")
    text = to_simplified(text).lower()
    return re.sub(r"\s+", "", text)


# --------------------------------------------------------------------------- companies

# Longest first, so 股份有限公司 goes before 有限公司 before 公司.
_LEGAL_SUFFIXES: tuple[str, ...] = tuple(
    sorted(
        {
            "股份有限公司", "有限责任公司", "有限公司", "责任公司", "分公司", "子公司", "总公司", "公司",
            "集团", "股份", "控股", "实业", "总厂", "分厂", "工厂", "厂", "商行", "经营部", "经销部",
            "门市部", "工作室", "个体户", "合伙企业", "有限合伙", "普通合伙",
            # Latin forms, as they look after punctuation is removed ("Co., Ltd." -> "coltd").
            "coltd", "ltd", "limited", "inc", "corporation", "corp", "company", "group", "llc", "gmbh",
        },
        key=len,
        reverse=True,
    )
)

# Prefecture-level cities and the county-level manufacturing towns forms often lead with.
_CITIES = """
北京 上海 天津 重庆 石家庄 唐山 秦皇岛 邯郸 邢台 保定 张家口 承德 沧州 廊坊 衡水 太原 大同 阳泉 长治
晋城 朔州 晋中 运城 忻州 临汾 吕梁 呼和浩特 包头 乌海 赤峰 通辽 鄂尔多斯 呼伦贝尔 巴彦淖尔 乌兰察布
沈阳 大连 鞍山 抚顺 本溪 丹东 锦州 营口 阜新 辽阳 盘锦 铁岭 朝阳 葫芦岛 长春 吉林 四平 辽源 通化
白山 松原 白城 延边 哈尔滨 齐齐哈尔 鸡西 鹤岗 双鸭山 大庆 伊春 佳木斯 七台河 牡丹江 黑河 绥化
南京 无锡 徐州 常州 苏州 南通 连云港 淮安 盐城 扬州 镇江 泰州 宿迁 杭州 宁波 温州 嘉兴 湖州 绍兴
金华 衢州 舟山 台州 丽水 合肥 芜湖 蚌埠 淮南 马鞍山 淮北 铜陵 安庆 黄山 滁州 阜阳 宿州 六安 亳州
池州 宣城 福州 厦门 莆田 三明 泉州 漳州 南平 龙岩 宁德 南昌 景德镇 萍乡 九江 新余 鹰潭 赣州 吉安
宜春 抚州 上饶 济南 青岛 淄博 枣庄 东营 烟台 潍坊 济宁 泰安 威海 日照 临沂 德州 聊城 滨州 菏泽
郑州 开封 洛阳 平顶山 安阳 鹤壁 新乡 焦作 濮阳 许昌 漯河 三门峡 南阳 商丘 信阳 周口 驻马店 济源
武汉 黄石 十堰 宜昌 襄阳 鄂州 荆门 孝感 荆州 黄冈 咸宁 随州 恩施 长沙 株洲 湘潭 衡阳 邵阳 岳阳
常德 张家界 益阳 郴州 永州 怀化 娄底 广州 韶关 深圳 珠海 汕头 佛山 江门 湛江 茂名 肇庆 惠州 梅州
汕尾 河源 阳江 清远 东莞 中山 潮州 揭阳 云浮 南宁 柳州 桂林 梧州 北海 防城港 钦州 贵港 玉林 百色
贺州 河池 来宾 崇左 海口 三亚 儋州 成都 自贡 攀枝花 泸州 德阳 绵阳 广元 遂宁 内江 乐山 南充 眉山
宜宾 广安 达州 雅安 巴中 资阳 贵阳 六盘水 遵义 安顺 毕节 铜仁 昆明 曲靖 玉溪 保山 昭通 丽江 普洱
临沧 拉萨 西安 铜川 宝鸡 咸阳 渭南 延安 汉中 榆林 安康 商洛 兰州 嘉峪关 金昌 白银 天水 武威 张掖
平凉 酒泉 庆阳 定西 陇南 西宁 银川 石嘴山 吴忠 固原 中卫 乌鲁木齐 克拉玛依 吐鲁番 哈密 昌吉 伊犁
喀什 库尔勒 香港 澳门 台北 高雄 台中
昆山 江阴 张家港 常熟 太仓 宜兴 溧阳 丹阳 靖江 海门 启东 如皋 义乌 慈溪 余姚 诸暨 永康 乐清
瑞安 温岭 玉环 海宁 桐乡 平湖 嘉善 长兴 德清 安吉 上虞 嵊州 晋江 石狮 南安 福清 长乐 即墨 胶州
平度 莱州 龙口 寿光 诸城 邹平 顺德 南海 番禺 花都 增城 从化 宝安 龙岗 虎门 鹤山 开平 台山
萧山 余杭 富阳 临安 江宁 浦东 滨海 武进 吴江 吴中 相城 高新区 工业园区 新区 开发区
"""
_CITY_NAMES: tuple[str, ...] = tuple(sorted(set(_CITIES.split()), key=len, reverse=True))

_PROVINCE_NAMES: tuple[str, ...] = tuple(
    sorted(
        {full for full in PROVINCES} | {s for shorts in PROVINCES.values() for s in shorts if len(s) >= 2},
        key=len,
        reverse=True,
    )
)
# Administrative words that may follow a region name: 浙江省杭州市萧山区.
_ADMIN_TAIL = ("自治州", "地区", "省", "市", "区", "县")
_BRACKETS = re.compile(r"[(\[{【〔（]([^)\]}】〕）]*)[)\]}】〕）]")
_PUNCT = re.compile(r"[\s\-_.,，。·•'\"“”‘’/\\&+:：;；!！?？*@#|、]+")
_REGION_WORDS = ("中国", "国际", "china", "中国区")


_PLACES: frozenset[str] = frozenset(_CITY_NAMES) | frozenset(_PROVINCE_NAMES)
_PLACE_LENGTHS: tuple[int, ...] = tuple(sorted({len(p) for p in _PLACES | set(_REGION_WORDS)}, reverse=True))


def _is_region(text: str) -> bool:
    text = text.strip()
    if text in _PLACES or text in _REGION_WORDS:
        return True
    return any(text.endswith(tail) and text[: -len(tail)] in _PLACES for tail in _ADMIN_TAIL)


def _strip_region_prefix(name: str) -> str:
    """Drop leading 省/市/区 prefixes (浙江省杭州市萧山区恒锐 → 恒锐), keeping a real name."""
    changed = True
    while changed:
        changed = False
        for size in _PLACE_LENGTHS:
            head = name[:size]
            if head not in _PLACES and head not in _REGION_WORDS:
                continue
            rest = name[size:]
            for tail in _ADMIN_TAIL:
                if rest.startswith(tail):
                    rest = rest[len(tail):]
                    break
            # Keep at least two characters: 上海 电气 → 电气, but never an empty name.
            if len(rest) >= 2:
                name, changed = rest, True
                break
    return name


def _trailing_region(name: str) -> int:
    """Length of a region name (with its 市/区 word) ending ``name``, 0 if none."""
    for tail in ("", *_ADMIN_TAIL):
        if tail and not name.endswith(tail):
            continue
        base = name[: len(name) - len(tail)]
        for size in _PLACE_LENGTHS:
            if len(base) - size >= 2 and base[-size:] in _PLACES:
                return size + len(tail)
    return 0


def _strip_legal_suffix(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for suffix in _LEGAL_SUFFIXES:
            if name.endswith(suffix) and len(name) - len(suffix) >= 2:
                name, changed = name[: -len(suffix)], True
                break
        if not changed:
            # 苏州分公司 / (苏州): a trailing region after the legal form is the branch's place.
            cut = _trailing_region(name)
            if cut:
                name, changed = name[:-cut], True
    return name


def normalize_company(raw: str) -> str:
    """The comparison key of a company name.

    Full/half width, traditional/simplified, case and spaces are folded; bracketed
    regions (``（苏州）``, ``(中国)``) and leading region prefixes (``江苏``, ``苏州``,
    ``浙江省杭州市``) are dropped; legal forms and branch words at the end
    (``有限公司``, ``股份``, ``集团``, ``分公司``, ``厂``, ``Co., Ltd.``) are stripped,
    repeatedly. At least two characters of the name always remain, so ``上海电气`` becomes
    ``电气`` — short keys are too generic to merge on alone, see :func:`find_duplicate`.
    """
    name = _fold(raw)

    def _bracket(m: re.Match[str]) -> str:
        inner = m.group(1)
        if not inner or _is_region(inner) or _strip_legal_suffix(inner) == "" or inner in _LEGAL_SUFFIXES:
            return ""
        return inner

    stripped = _PUNCT.sub("", _BRACKETS.sub(_bracket, name))
    # "（苏州）" alone: better a region as the key than no key at all.
    name = stripped if len(stripped) >= 2 else _PUNCT.sub("", _BRACKETS.sub(r"\1", name))
    name = _strip_region_prefix(name)
    name = _strip_legal_suffix(name)
    return name


def normalize_contact(raw: str) -> str:
    """A person's name folded for comparison (width, case, traditional, spaces)."""
    return _PUNCT.sub("", _fold(raw))


# --------------------------------------------------------------------------- duplicates


class MatchKey(str, Enum):
    """Which key made two leads the same customer, strongest first."""

    PHONE = "phone"
    CONTACT_COMPANY = "contact_company"
    COMPANY = "company"

    @property
    def label(self) -> str:
        """The key in Chinese, for cards and audit rows."""
        return {"phone": "电话", "contact_company": "联系人+公司", "company": "公司名"}[self.value]


@dataclass(frozen=True)
class LeadKeys:
    """The de-duplication keys of one lead, already normalised (see :func:`lead_keys`)."""

    id: int | str
    customer_id: int | None
    phone_norm: str | None
    company_norm: str
    contact_name: str = ""


@dataclass(frozen=True)
class DuplicateMatch:
    """An earlier lead the new one duplicates, and why."""

    existing: LeadKeys
    key: MatchKey
    value: str
    ignored_phones: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """The "老客户再次咨询" line for the rep's card and the audit row."""
        shown = _mask_phone(self.value) if self.key is MatchKey.PHONE else self.value
        who = f"客户 #{self.existing.customer_id}" if self.existing.customer_id is not None else f"线索 #{self.existing.id}"
        return f"老客户再次咨询：{self.key.label}「{shown}」与{who}相同"


def _mask_phone(phone: str) -> str:
    # Cards may land in group chats: show enough to recognise, not to dial.
    if len(phone) == 11 and phone.isdigit():
        return f"{phone[:3]}****{phone[7:]}"
    return phone


def lead_keys(
    id: int | str,
    *,
    customer_id: int | None = None,
    phone: str = "",
    company: str = "",
    contact_name: str = "",
) -> LeadKeys:
    """Build :class:`LeadKeys` from raw form values, normalising each key."""
    return LeadKeys(
        id=id,
        customer_id=customer_id,
        phone_norm=normalize_phone(phone),
        company_norm=normalize_company(company),
        contact_name=normalize_contact(contact_name),
    )


def find_duplicate(
    lead: LeadKeys,
    existing: Iterable[LeadKeys],
    *,
    broad_threshold: int = 5,
    min_company_len: int = 4,
) -> DuplicateMatch | None:
    """The earlier lead that ``lead`` duplicates, or None.

    Keys, strongest first: the normalised phone; the contact name together with the
    company; the company alone when its key has at least ``min_company_len``
    characters (``电气`` alone is too generic). A phone shared by more than
    ``broad_threshold`` different customers is a switchboard or an agent's number and is
    ignored as a key (reported in ``ignored_phones``) instead of merging everyone. Among
    several matches of the same key the oldest record (smallest id, customers first)
    wins, so repeated enquiries all point at the original.
    """
    rows = [row for row in existing if row.id != lead.id]
    owners: dict[str, set[object]] = {}
    for row in rows:
        if row.phone_norm:
            # A lead not yet tied to a customer counts as its own customer.
            owner = ("c", row.customer_id) if row.customer_id is not None else ("l", row.id)
            owners.setdefault(row.phone_norm, set()).add(owner)
    broad = tuple(sorted(p for p, who in owners.items() if len(who) > broad_threshold))
    phone = lead.phone_norm if lead.phone_norm and lead.phone_norm not in broad else None
    ignored = (lead.phone_norm,) if lead.phone_norm and lead.phone_norm in broad else ()
    contact = normalize_contact(lead.contact_name)
    company = lead.company_norm

    best: tuple[int, tuple[int, str], LeadKeys, MatchKey, str] | None = None
    for row in rows:
        found: tuple[MatchKey, str] | None = None
        if phone and row.phone_norm == phone:
            found = (MatchKey.PHONE, phone)
        elif company and row.company_norm == company and contact and normalize_contact(row.contact_name) == contact:
            found = (MatchKey.CONTACT_COMPANY, f"{lead.contact_name} @ {company}")
        elif company and len(company) >= min_company_len and row.company_norm == company:
            found = (MatchKey.COMPANY, company)
        if found is None:
            continue
        rank = list(MatchKey).index(found[0])
        order = (0 if row.customer_id is not None else 1, _sortable(row.id))
        if best is None or (rank, order) < (best[0], best[1]):
            best = (rank, order, row, found[0], found[1])
    if best is None:
        return None
    return DuplicateMatch(existing=best[2], key=best[3], value=best[4], ignored_phones=ignored)


def _sortable(value: int | str) -> str:
    # Ids may be ints (database) or strings (imports); compare numbers numerically.
    return f"{value:020d}" if isinstance(value, int) else f"~{value}"
