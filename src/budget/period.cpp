// period_at(): the UTC calendar day, week (Monday to Monday) or month containing an instant,
// with its id ("d2026-11-27", "w2026-11-23", "m2026-11") and bounds, using the C++20
// <chrono> calendar types. It knows nothing about Redis or budgets.
#include <fmt/format.h>

#include <chrono>

#include "budget/budget.h"

namespace redline::budget {

namespace {

namespace chr = std::chrono;

int64_t unix_ms(chr::sys_days day) {
  return chr::duration_cast<chr::milliseconds>(day.time_since_epoch()).count();
}

}  // namespace

Period period_at(config::BudgetPeriod period, int64_t now_ms) {
  // floor, not a cast: an instant before 1970 still belongs to the day that contains it.
  const chr::sys_days today =
      chr::floor<chr::days>(chr::sys_time<chr::milliseconds>(chr::milliseconds(now_ms)));
  chr::sys_days start = today;
  chr::sys_days end = today + chr::days(1);
  char tag = 'd';
  switch (period) {
    case config::BudgetPeriod::kDay:
      break;
    case config::BudgetPeriod::kWeek:
      // weekday difference is always in [0, 6] days: Monday itself starts its week.
      start = today - (chr::weekday(today) - chr::Monday);
      end = start + chr::days(7);
      tag = 'w';
      break;
    case config::BudgetPeriod::kMonth: {
      const chr::year_month_day ymd(today);
      const chr::year_month month = ymd.year() / ymd.month();
      start = chr::sys_days(month / 1);
      end = chr::sys_days((month + chr::months(1)) / 1);
      tag = 'm';
      break;
    }
  }
  const chr::year_month_day first(start);
  Period p;
  p.start_ms = unix_ms(start);
  p.end_ms = unix_ms(end);
  if (tag == 'm') {
    p.id = fmt::format("m{:04}-{:02}", static_cast<int>(first.year()),
                       static_cast<unsigned>(first.month()));
  } else {
    p.id = fmt::format("{}{:04}-{:02}-{:02}", tag, static_cast<int>(first.year()),
                       static_cast<unsigned>(first.month()), static_cast<unsigned>(first.day()));
  }
  return p;
}

}  // namespace redline::budget
