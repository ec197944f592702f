"""Words of the web inbox's channel page (filters, paging, accessibility names), en and zh-CN.

The card's own words (statuses, buttons, clock lines) stay in ``cards.strings``.
"""

from __future__ import annotations

STRINGS: dict[str, dict[str, str]] = {
    "en": {
        "skip": "Skip to the inquiries",
        "filters": "Filters",
        "views": "Statuses",
        "view.open": "Open",
        "view.archive": "Archive",
        "view.all": "All",
        "owner": "Owner",
        "owner.any": "Anyone",
        "owner.mine": "Mine",
        "owner.none": "Unclaimed",
        "priority": "Priority",
        "country": "Country",
        "language": "Language",
        "source": "Source",
        "any": "Any",
        "sort": "Sort",
        "sort.due": "Most overdue first",
        "sort.oldest": "Oldest first",
        "sort.newest": "Newest first",
        "sort.updated": "Recently changed",
        "search": "Search subject, message, customer",
        "apply_filters": "Filter",
        "clear": "Clear filters",
        "showing": "{first}–{last} of {total}",
        "page_of": "Page {page} of {pages}",
        "previous": "Previous page",
        "next": "Next page",
        "paging": "Pages",
        "no_match": "No inquiries match these filters.",
        "more_arrived": "New matching inquiries arrived: reload to see them in order.",
        "reason_for": "Reason for #{number}",
        "choice_for": "{what} for #{number}",
        "apply_for": "{apply} {what} for #{number}",
        "button_for": "{label} #{number}",
        "overdue": "Overdue",
    },
    "zh-CN": {
        "skip": "跳到询盘列表",
        "filters": "筛选",
        "views": "状态",
        "view.open": "待处理",
        "view.archive": "归档",
        "view.all": "全部",
        "owner": "负责人",
        "owner.any": "任何人",
        "owner.mine": "我的",
        "owner.none": "未认领",
        "priority": "优先级",
        "country": "国家",
        "language": "语言",
        "source": "来源",
        "any": "全部",
        "sort": "排序",
        "sort.due": "最超时的在前",
        "sort.oldest": "最早的在前",
        "sort.newest": "最新的在前",
        "sort.updated": "最近变更",
        "search": "搜索主题、内容、客户",
        "apply_filters": "筛选",
        "clear": "清除筛选",
        "showing": "第 {first}–{last} 条，共 {total} 条",
        "page_of": "第 {page} / {pages} 页",
        "previous": "上一页",
        "next": "下一页",
        "paging": "分页",
        "no_match": "没有符合筛选条件的询盘。",
        "more_arrived": "有新的符合条件的询盘：刷新页面按顺序查看。",
        "reason_for": "#{number} 的原因",
        "choice_for": "#{number} 的{what}",
        "apply_for": "{apply}#{number} 的{what}",
        "button_for": "{label} #{number}",
        "overdue": "已超时",
    },
}


def web_text(locale: str, key: str, **params: object) -> str:
    """The channel page string ``key`` in ``locale`` (English as fallback)."""
    table = STRINGS.get(locale, STRINGS["en"])
    template = table.get(key) or STRINGS["en"][key]
    return template.format(**params) if params else template
