#include "model/general_corpus.h"

#include <algorithm>
#include <cctype>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "model/error.h"
#include "seeded_random.h"

namespace model {
namespace {

using detail::uniform_below;
using detail::uniform_between;
using Engine = std::mt19937_64;
using Words = std::vector<std::string_view>;

// At most one random draw per expression: the operands of `+` are unsequenced, and two draws in
// one expression would make the text depend on the compiler.

constexpr uint64_t kCorpusStream = 0x67656e6572616cULL;  // "general": apart from the note streams

std::string pick(Engine& e, const Words& items) {
  return std::string(items[uniform_below(e, items.size())]);
}

template <class T>
const T& pick_item(Engine& e, const std::vector<T>& items) {
  return items[uniform_below(e, items.size())];
}

int64_t between(Engine& e, int64_t lo, int64_t hi) {
  return uniform_between(e, lo, hi);
}

bool coin(Engine& e, double p) {
  return detail::uniform_unit(e) < p;
}

// Up to `n` distinct items of `items`, in a random order.
template <class T>
std::vector<T> sample(Engine& e, std::vector<T> items, size_t n) {
  for (size_t i = 0; i < items.size() && i < n; ++i) {
    std::swap(items[i], items[i + uniform_below(e, items.size() - i)]);
  }
  items.resize(std::min(n, items.size()));
  return items;
}

std::string num(int64_t n) {
  return std::to_string(n);
}

// `scaled` / 10^decimals with exactly `decimals` digits after the point: "-3.5", "12.05".
std::string decimal(int64_t scaled, int decimals) {
  int64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  const bool negative = scaled < 0;
  const int64_t magnitude = negative ? -scaled : scaled;
  std::string out = (negative ? "-" : "") + std::to_string(magnitude / scale);
  if (decimals > 0) {
    std::string frac = std::to_string(magnitude % scale);
    out += "." + std::string(static_cast<size_t>(decimals) - frac.size(), '0') + frac;
  }
  return out;
}

std::string money(int64_t cents) {
  return decimal(cents, 2);
}

// 12450 -> "12,450".
std::string grouped(int64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

std::string two_digits(int64_t n) {
  return (n < 10 ? "0" : "") + std::to_string(n);
}

// Minutes after midnight -> "HH:MM".
std::string clock_time(int64_t minutes) {
  return two_digits(minutes / 60 % 24) + ":" + two_digits(minutes % 60);
}

std::string capitalized(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

std::string lowercase(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// A sentence template: '#' stands for a number drawn from [lo, hi], '@' for a name given by the
// caller.
struct Phrase {
  std::string_view text;
  int64_t lo = 0;
  int64_t hi = 0;
};

std::string fill(Engine& e, const Phrase& p, std::string_view name = "") {
  std::string out;
  out.reserve(p.text.size() + name.size() + 8);
  const bool has_number = p.text.find('#') != std::string_view::npos;
  const std::string number = has_number ? num(between(e, p.lo, p.hi)) : std::string();
  for (char c : p.text) {
    if (c == '#') {
      out += number;
    } else if (c == '@') {
      out += name;
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Shared word lists.

const Words kFirstNames = {
    "Anna",  "Ben",    "Clara", "David", "Emma",   "Felix", "Grace", "Hugo",  "Irene", "Jack",
    "Karin", "Leo",    "Maria", "Nils",  "Olivia", "Paul",  "Rosa",  "Simon", "Tara",  "Victor",
    "Alice", "Oscar",  "Lena",  "Tom",   "Sofia",  "Marco", "Nina",  "Peter", "Julia", "Sam",
    "Helen", "Martin", "Eva",   "Lucas", "Mia",    "Adam",  "Chloe", "Ivan",  "Laura", "Omar"};

const Words kLastNames = {"Smith",  "Berg",      "Novak", "Rossi",   "Garcia", "Meyer",
                          "Jansen", "Dubois",    "Kowal", "Larsen",  "Brown",  "Silva",
                          "Weber",  "Moreau",    "Costa", "Fischer", "Walsh",  "Nagy",
                          "Horvat", "Lindqvist", "Evans", "Bauer",   "Martin", "Olsen",
                          "Keller", "Ferrari",   "Young", "Hughes",  "Petrov", "Santos"};

const Words kCities = {"Lisbon",    "Madrid",     "Paris",   "Lyon",      "Brussels", "Amsterdam",
                       "Hamburg",   "Berlin",     "Munich",  "Vienna",    "Prague",   "Warsaw",
                       "Krakow",    "Budapest",   "Zagreb",  "Rome",      "Milan",    "Naples",
                       "Athens",    "Copenhagen", "Oslo",    "Stockholm", "Helsinki", "Dublin",
                       "Edinburgh", "London",     "Bristol", "Zurich",    "Geneva",   "Porto",
                       "Seville",   "Valencia",   "Bologna", "Salzburg",  "Gdansk",   "Bergen",
                       "Riga",      "Tallinn",    "Ghent",   "Bordeaux"};

const Words kTowns = {"Millbrook", "Oakwood",   "Stonebridge", "Greenvale", "Redcliff",
                      "Ashford",   "Bayview",   "Hillcrest",   "Kingsport", "Lakeside",
                      "Northgate", "Eastbrook", "Westfield",   "Silverton", "Maple Valley"};

const Words kWeekdays = {"Monday", "Tuesday",  "Wednesday", "Thursday",
                         "Friday", "Saturday", "Sunday"};

const Words kMonths = {"January", "February", "March",     "April",   "May",      "June",
                       "July",    "August",   "September", "October", "November", "December"};

const Words kStreets = {"Main Street",   "Station Road", "High Street",   "Market Square",
                        "Church Lane",   "Park Avenue",  "River Road",    "Mill Lane",
                        "Garden Street", "Harbour Road", "Bridge Street", "Queen Street"};

std::string person(Engine& e) {
  const std::string first = pick(e, kFirstNames);
  return first + " " + pick(e, kLastNames);
}

struct Date {
  int64_t weekday = 0;  // 0 = Monday
  int64_t day = 1;
  int64_t month = 0;  // 0 = January
  int64_t year = 2024;
};

// The day of the week of a Gregorian date (month 1-12), 0 = Monday (Sakamoto's method).
int64_t day_of_week(int64_t year, int64_t month, int64_t day) {
  static const int64_t kOffsets[] = {0, 3, 2, 5, 0, 3, 5, 1, 4, 6, 2, 4};
  if (month < 3) year -= 1;
  const int64_t sunday_first =
      (year + year / 4 - year / 100 + year / 400 + kOffsets[month - 1] + day) % 7;
  return (sunday_first + 6) % 7;
}

Date random_date(Engine& e) {
  Date d;
  d.day = between(e, 1, 28);
  d.month = between(e, 0, 11);
  d.year = between(e, 2018, 2026);
  d.weekday = day_of_week(d.year, d.month + 1, d.day);
  return d;
}

std::string weekday_name(const Date& d) {
  return std::string(kWeekdays[static_cast<size_t>(d.weekday)]);
}

std::string month_name(const Date& d) {
  return std::string(kMonths[static_cast<size_t>(d.month)]);
}

int64_t days_in_month(int64_t year, int64_t month) {  // month 0-11
  static const int64_t kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
  return kDays[month] + (month == 1 && leap ? 1 : 0);
}

// `d` plus `days` (>= 0) days.
Date add_days(Date d, int64_t days) {
  d.day += days;
  while (d.day > days_in_month(d.year, d.month)) {
    d.day -= days_in_month(d.year, d.month);
    if (++d.month == 12) {
      d.month = 0;
      ++d.year;
    }
  }
  d.weekday = day_of_week(d.year, d.month + 1, d.day);
  return d;
}

// "Tuesday 14 May".
std::string long_date(const Date& d) {
  return weekday_name(d) + " " + num(d.day) + " " + month_name(d);
}

// "14/05/2024".
std::string slash_date(const Date& d) {
  return two_digits(d.day) + "/" + two_digits(d.month + 1) + "/" + num(d.year);
}

// "2024-05-14".
std::string iso_date(const Date& d) {
  return num(d.year) + "-" + two_digits(d.month + 1) + "-" + two_digits(d.day);
}

// "May 14, 2024".
std::string us_date(const Date& d) {
  return month_name(d) + " " + num(d.day) + ", " + num(d.year);
}

std::string any_date(Engine& e, const Date& d) {
  switch (uniform_below(e, 4)) {
    case 0:
      return long_date(d);
    case 1:
      return slash_date(d);
    case 2:
      return iso_date(d);
    default:
      return us_date(d);
  }
}

// Up to `n` distinct items of `items`, in the order of `items`.
template <class T>
std::vector<T> ordered_sample(Engine& e, const std::vector<T>& items, size_t n) {
  std::vector<size_t> indices(items.size());
  for (size_t i = 0; i < indices.size(); ++i) indices[i] = i;
  indices = sample(e, std::move(indices), n);
  std::sort(indices.begin(), indices.end());
  std::vector<T> out;
  out.reserve(indices.size());
  for (size_t i : indices) out.push_back(items[i]);
  return out;
}

// The sentences of `phrases`, `n` of them in the order of `phrases`, joined by spaces.
std::string paragraph(Engine& e, const std::vector<Phrase>& phrases, size_t n,
                      std::string_view name = "") {
  std::string out;
  for (const Phrase& p : ordered_sample(e, phrases, n)) {
    if (!out.empty()) out += ' ';
    out += fill(e, p, name);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Recipes.

struct Ingredient {
  std::string_view name;
  int64_t lo, hi, step;   // the amount is step * [lo, hi]
  std::string_view unit;  // "" for a count
};

const std::vector<Ingredient> kSweetIngredients = {{"flour", 4, 12, 50, "g"},
                                                   {"sugar", 2, 10, 25, "g"},
                                                   {"butter", 2, 8, 25, "g"},
                                                   {"milk", 2, 10, 50, "ml"},
                                                   {"eggs", 1, 4, 1, ""},
                                                   {"salt", 1, 2, 1, "pinch"},
                                                   {"apples", 2, 6, 1, ""},
                                                   {"lemon juice", 1, 3, 1, "tbsp"},
                                                   {"baking powder", 1, 3, 1, "tsp"},
                                                   {"cinnamon", 1, 2, 1, "tsp"},
                                                   {"oats", 2, 6, 50, "g"},
                                                   {"honey", 1, 3, 1, "tbsp"},
                                                   {"cream", 1, 4, 50, "ml"},
                                                   {"bananas", 2, 4, 1, ""},
                                                   {"walnuts", 1, 3, 50, "g"},
                                                   {"yoghurt", 1, 3, 100, "g"},
                                                   {"raisins", 1, 3, 50, "g"},
                                                   {"vanilla sugar", 1, 2, 1, "tsp"}};

const std::vector<Ingredient> kSavouryIngredients = {
    {"olive oil", 1, 4, 1, "tbsp"}, {"onions", 1, 3, 1, ""},
    {"garlic cloves", 1, 4, 1, ""}, {"carrots", 2, 5, 1, ""},
    {"potatoes", 4, 16, 50, "g"},   {"rice", 4, 8, 50, "g"},
    {"lentils", 4, 6, 50, "g"},     {"tomatoes", 2, 6, 1, ""},
    {"salt", 1, 2, 1, "pinch"},     {"vegetable stock", 4, 10, 100, "ml"},
    {"cheese", 2, 6, 50, "g"},      {"spinach", 2, 5, 50, "g"},
    {"mushrooms", 2, 6, 50, "g"},   {"black pepper", 1, 2, 1, "pinch"},
    {"pasta", 3, 5, 100, "g"},      {"basil leaves", 6, 12, 1, ""},
    {"paprika", 1, 2, 1, "tsp"},    {"beans (tinned)", 1, 2, 400, "g"},
    {"pumpkin", 5, 10, 100, "g"},   {"cream", 1, 4, 50, "ml"},
    {"peppers", 1, 3, 1, ""}};

struct Dish {
  std::string_view name;
  bool sweet;
};

const std::vector<Dish> kDishes = {
    {"Apple crumble", true},     {"Tomato soup", false}, {"Vegetable curry", false},
    {"Lemon cake", true},        {"Pancakes", true},     {"Mushroom risotto", false},
    {"Banana bread", true},      {"Lentil stew", false}, {"Potato salad", false},
    {"Pasta with pesto", false}, {"Onion tart", false},  {"Rice pudding", true},
    {"Carrot cake", true},       {"Bean chili", false},  {"Pumpkin soup", false},
    {"Oat cookies", true},       {"Spinach pie", false}, {"Fried rice", false},
    {"Honey muffins", true},     {"Walnut bread", true}};

// In the order of the work.
const std::vector<Phrase> kSweetSteps = {
    {"Preheat the oven to # C.", 160, 200},
    {"Mix the dry ingredients in a large bowl.", 0, 0},
    {"Melt the butter in a pan over low heat.", 0, 0},
    {"Whisk the eggs with the sugar until pale.", 0, 0},
    {"Stir in the milk a little at a time.", 0, 0},
    {"Pour the mixture into a greased tin (about 24 cm).", 0, 0},
    {"Bake for # minutes until golden brown.", 20, 50},
    {"Let it cool for # minutes before cutting.", 10, 30},
    {"Serve with cream or yoghurt.", 0, 0}};

const std::vector<Phrase> kSavourySteps = {
    {"Chop the vegetables into small pieces.", 0, 0},
    {"Heat the oil in a large pan.", 0, 0},
    {"Fry the onions until soft, about # minutes.", 4, 10},
    {"Add the garlic and the spices and stir for 1 minute.", 0, 0},
    {"Pour in the stock and bring to the boil.", 0, 0},
    {"Cook for # minutes, stirring now and then.", 10, 35},
    {"Blend until smooth (optional), then reheat gently.", 0, 0},
    {"Season with salt and pepper to taste.", 0, 0},
    {"Serve warm, with bread or a green salad.", 0, 0}};

const Words kRecipeTips = {"Tip: it keeps for 3 days in the fridge.",
                           "Tip: add a handful of fresh herbs at the end.",
                           "Tip: it can be frozen for up to 1 month.",
                           "Note: cooking times vary; check a few minutes early.",
                           "Variation: use half the amount for a light lunch."};

std::string recipe(Engine& e) {
  const Dish& dish = pick_item(e, kDishes);
  const std::string name(dish.name);
  std::string s;
  switch (uniform_below(e, 3)) {
    case 0:
      s = "Recipe: " + name + "\n";
      break;
    case 1:
      s = name + " (family recipe)\n";
      break;
    default:
      s = "How to make " + lowercase(name) + "\n";
      break;
  }
  s += "Serves: " + num(between(e, 2, 8)) + "\n";
  s += "Time: " + num(5 * between(e, 4, 18)) + " min\n";
  s += "Difficulty: " + pick(e, {"easy", "medium", "easy", "a little tricky"}) +
       "\n\nIngredients:\n";
  const auto& ingredients = dish.sweet ? kSweetIngredients : kSavouryIngredients;
  for (const Ingredient& ing :
       ordered_sample(e, ingredients, static_cast<size_t>(between(e, 4, 7)))) {
    const int64_t amount = ing.step * between(e, ing.lo, ing.hi);
    s += "- " + std::string(ing.name) + " " + num(amount);
    if (!ing.unit.empty()) s += " " + std::string(ing.unit);
    s += "\n";
  }
  s += "\nSteps:\n";
  int step = 1;
  const auto& steps = dish.sweet ? kSweetSteps : kSavourySteps;
  for (const Phrase& p : ordered_sample(e, steps, static_cast<size_t>(between(e, 3, 6)))) {
    s += num(step++) + ". " + fill(e, p) + "\n";
  }
  if (coin(e, 0.5)) s += "\n" + pick(e, kRecipeTips) + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Weather reports.

const Words kSkies = {"sunny",      "mostly sunny",  "partly cloudy", "cloudy", "overcast",
                      "light rain", "heavy showers", "drizzle",       "fog",    "clear skies"};
const Words kColdSkies = {"light snow", "sleet", "snow showers", "frost", "clear and cold"};
const Words kWarmSkies = {"thunderstorms", "hot sunshine", "hazy sunshine", "humid and cloudy"};
const Words kWindDirections = {"N", "NE", "E", "SE", "S", "SW", "W", "NW"};
const Words kColdOutlooks = {
    "temperatures falling below zero at night; watch for ice on the roads.",
    "more snow in the hills on Thursday.", "a cold but sunny weekend with light winds."};
const Words kMildOutlooks = {"drier and warmer towards the weekend.",
                             "more rain on Friday, then sunny spells.",
                             "a cold front brings strong winds on Sunday.",
                             "settled weather with light winds for several days.",
                             "changeable, with bright spells between the showers."};
const Words kWarmOutlooks = {"hot and humid; storms are possible in the late afternoon.",
                             "another dry and sunny week; drink plenty of water.",
                             "slightly cooler after the weekend, with a fresh breeze."};

// Typical daytime temperatures (tenths of a degree) and day lengths (0 = shortest, 8 = longest)
// of each month, northern hemisphere.
constexpr int64_t kMonthTemps[] = {20, 40, 80, 130, 170, 210, 240, 235, 190, 140, 80, 30};
constexpr int64_t kMonthDaylight[] = {0, 1, 3, 5, 7, 8, 8, 7, 5, 3, 1, 0};

// A sky that fits a temperature in tenths of a degree.
std::string sky(Engine& e, int64_t temp) {
  static const Words kNone;
  const Words& extra = temp <= 30 ? kColdSkies : temp >= 220 ? kWarmSkies : kNone;
  const uint64_t i = uniform_below(e, kSkies.size() + extra.size());
  return std::string(i < kSkies.size() ? kSkies[i] : extra[i - kSkies.size()]);
}

std::string weather(Engine& e) {
  const std::string city = pick(e, kCities);
  const Date d = random_date(e);
  std::string s = "Weather report for " + city + ", " + long_date(d) + "\n\n";
  const auto month = static_cast<size_t>(d.month);
  const int64_t base = kMonthTemps[month] + between(e, -50, 50);  // tenths of a degree
  const Words parts = {"Morning", "Afternoon", "Evening", "Night"};
  constexpr int64_t kShifts[] = {-20, 30, 0, -40};  // from the day's base, by part
  const int64_t n_parts = between(e, 2, 4);
  for (int64_t i = 0; i < n_parts; ++i) {
    const int64_t temp = base + kShifts[i] + between(e, -15, 15);
    s += std::string(parts[static_cast<size_t>(i)]) + ": " + sky(e, temp);
    s += ", Temp " + decimal(temp, 1) + " C, wind " + num(between(e, 0, 45)) + " km/h";
    s += " from the " + pick(e, kWindDirections) + ".\n";
  }
  s += "Humidity: " + num(between(e, 30, 98)) + "%\n";
  s += "Rain: " + decimal(between(e, 0, 250), 1) + " mm\n";
  const int64_t daylight = kMonthDaylight[month];
  const int64_t sunrise = 8 * 60 - 22 * daylight + between(e, -10, 10);
  s += "Sunrise: " + clock_time(sunrise) + ", sunset: ";
  s += clock_time(16 * 60 + 30 + 40 * daylight + between(e, -10, 10)) + "\n";
  if (coin(e, 0.5)) s += "UV index: " + num(between(e, 1, 2 + daylight)) + " (of 11)\n";
  const Words& outlooks = base <= 40 ? kColdOutlooks : base >= 220 ? kWarmOutlooks : kMildOutlooks;
  s += "\nOutlook: " + pick(e, outlooks) + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Travel itineraries.

const std::vector<Phrase> kActivities = {
    {"Walk through the old town and visit the cathedral.", 0, 0},
    {"Morning at the museum of modern art; free afternoon.", 0, 0},
    {"Boat trip on the river (# hours), lunch on board.", 1, 3},
    {"Day trip to the coast by bus, back by 19:00.", 0, 0},
    {"Guided tour of the castle at 10:30, meeting point at the main gate.", 0, 0},
    {"Bike rental for the day (# EUR) and a ride along the lake.", 12, 30},
    {"Visit the covered market and the botanical garden.", 0, 0},
    {"Hike to the viewpoint, about # km there and back.", 5, 14},
    {"Cooking class in the evening, # EUR per person.", 35, 90},
    {"Concert in the old opera house at 20:00.", 0, 0},
    {"Shopping in the city centre and dinner by the harbour.", 0, 0},
    {"Rest day: pool, books and a short walk.", 0, 0}};

const Words kHotelNames = {"Hotel Central", "Harbour View Inn",  "The Old Mill",
                           "Park Hotel",    "Hotel Aurora",      "Riverside Lodge",
                           "Grand Plaza",   "Guesthouse Linden", "Hotel Miramar",
                           "City Rooms",    "The Blue Door",     "Alpine Rest"};

std::string itinerary(Engine& e) {
  const std::vector<std::string_view> route = sample(e, kCities, 2);
  const Date d = random_date(e);
  const int64_t days = between(e, 2, 4);
  std::string s =
      "Travel itinerary: " + std::string(route[0]) + " to " + std::string(route[1]) + "\n";
  s += "Traveller: " + person(e) + "\n";
  s += "Dates: " + slash_date(d) + " (" + num(days) + " days)\n\n";
  const int64_t departs = between(e, 6 * 12, 14 * 12) * 5;
  s += "Day 1 (" + weekday_name(d) + "): train " + pick(e, {"IC", "EC", "RE", "TGV", "ICE"});
  s += " " + num(between(e, 100, 999)) + " departs " + clock_time(departs) + " from platform ";
  s += num(between(e, 1, 12)) + ", arrives ";
  s += clock_time(departs + 5 * between(e, 18, 90)) + ".\n";
  int64_t day = 2;
  for (const Phrase& p : sample(e, kActivities, static_cast<size_t>(days - 1))) {
    s += "Day " + num(day++) + ": " + fill(e, p) + "\n";
  }
  s += "\nHotel: " + pick(e, kHotelNames) + ", " + num(days - 1) + " nights, breakfast ";
  s += pick(e, {"included", "not included", "10 EUR extra"}) + ".\n";
  s += "Budget: " + num(50 * between(e, 6, 40)) + " EUR (tickets, meals, entry fees)\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Sports results.

const Words kTeams = {
    "Riverside United", "Northgate Rovers",    "Hillcrest Athletic", "Lakeside City",
    "Oakwood Rangers",  "Westfield Wanderers", "Eastbrook Town",     "Stonebridge FC",
    "Millbrook Eagles", "Greenvale Lions",     "Harbour Sharks",     "Redcliff Bears",
    "Silverton Hawks",  "Kingsport Falcons",   "Maple Valley Stars", "Bayview Dolphins"};

struct Sport {
  std::string_view name;
  int64_t low, high;  // a team's score
  std::string_view scorer_unit;
};

const std::vector<Sport> kSports = {
    {"Football", 0, 4, "goals"},   {"Basketball", 68, 112, "points"},
    {"Ice hockey", 0, 6, "goals"}, {"Handball", 21, 36, "goals"},
    {"Rugby", 3, 38, "points"},    {"Water polo", 4, 15, "goals"}};

std::string sports(Engine& e) {
  const Sport& sport = pick_item(e, kSports);
  const int64_t matches = between(e, 3, 5);
  const std::vector<std::string_view> teams = sample(e, kTeams, static_cast<size_t>(2 * matches));
  std::string s =
      std::string(sport.name) + " league, round " + num(between(e, 1, 30)) + ": results\n\n";
  for (int64_t m = 0; m < matches; ++m) {
    s += std::string(teams[static_cast<size_t>(2 * m)]) + " " +
         num(between(e, sport.low, sport.high));
    s += " - " + num(between(e, sport.low, sport.high)) + " ";
    s += std::string(teams[static_cast<size_t>(2 * m + 1)]) + "\n";
  }
  s += "\nTop scorer: " + person(e);
  s += " (" + num(between(e, 5, 30)) + " ";
  s += std::string(sport.scorer_unit) + " this season)\n";
  s += "Attendance: " + grouped(between(e, 800, 45000)) + "\n";
  const Date next = random_date(e);
  s += "Next round: " + long_date(next) + ", first game at " +
       clock_time(5 * between(e, 156, 240)) + ".\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Shop receipts.

struct Item {
  std::string_view name;
  int64_t cents;
};

const std::vector<Item> kItems = {
    {"Bread (whole wheat)", 240}, {"Milk 1 L", 119},           {"Eggs x10", 329},
    {"Butter 250 g", 259},        {"Apples 1 kg", 299},        {"Bananas", 189},
    {"Coffee beans 500 g", 799},  {"Green tea", 349},          {"Cheddar 200 g", 399},
    {"Tomatoes 500 g", 229},      {"Pasta 500 g", 149},        {"Olive oil 0.5 L", 649},
    {"Orange juice 1 L", 219},    {"Chocolate bar", 129},      {"Rice 1 kg", 279},
    {"Notebook A5", 250},         {"Ballpoint pens (3)", 199}, {"Glue stick", 119},
    {"Light bulb LED", 450},      {"Batteries AA (4)", 599},   {"Screws (box of 50)", 375},
    {"Paint brush", 480},         {"Garden gloves", 899},      {"Flower seeds", 175},
    {"Dish soap", 189},           {"Paper towels", 399},       {"Toothpaste", 235},
    {"Shampoo 300 ml", 425},      {"Newspaper", 250},          {"Birthday card", 325},
    {"Croissant", 110},           {"Sourdough loaf", 420},     {"Cinnamon roll", 195},
    {"Yoghurt 500 g", 169},       {"Carrots 1 kg", 139},       {"Onions 1 kg", 159},
    {"Dog food 2 kg", 1199},      {"Candles (6)", 549},        {"Tape measure 5 m", 799},
    {"Sketchbook", 650}};

const Words kShops = {"Corner Market",      "Green Grocer", "City Hardware",     "Paper & Pen",
                      "Daily Bakery",       "Fresh Foods",  "The Garden Centre", "Home & More",
                      "Valley Supermarket", "Sunrise Deli"};

std::string receipt(Engine& e) {
  std::string s = pick(e, kShops) + "\n";
  s += num(between(e, 1, 180)) + " ";
  s += pick(e, kStreets) + ", ";
  s += pick(e, kCities) + "\n";
  const Date d = random_date(e);
  s += "Date: " + iso_date(d) + "  Time: " + clock_time(between(e, 7 * 60, 21 * 60)) + "\n";
  s += "Receipt no. " + num(between(e, 100000, 999999)) + "\n\n";
  int64_t subtotal = 0;
  for (const Item& item : sample(e, kItems, static_cast<size_t>(between(e, 3, 8)))) {
    const int64_t qty = coin(e, 0.7) ? 1 : between(e, 2, 4);
    subtotal += qty * item.cents;
    s += std::string(item.name) + "  " + num(qty) + " x " + money(item.cents) + " = " +
         money(qty * item.cents) + "\n";
  }
  s += "\nSubtotal: " + money(subtotal) + "\n";
  int64_t total = subtotal;
  if (coin(e, 0.3)) {
    const int64_t percent = 5 * between(e, 1, 4);
    const int64_t discount = (subtotal * percent + 50) / 100;
    total -= discount;
    s += "Discount (" + num(percent) + "% member price): -" + money(discount) + "\n";
  }
  const int64_t vat = pick_item(e, std::vector<int64_t>{7, 10, 19, 21});
  s += "Incl. VAT " + num(vat) + "%: " + money((total * vat + 50) / (100 + vat)) + "\n";
  s += "Total: " + money(total) + " EUR\n";
  s += "Paid by " + pick(e, {"card", "cash", "card (contactless)", "mobile phone"}) + ".\n";
  s +=
      pick(e, {"Thank you for shopping with us!", "Please keep your receipt for returns (30 days).",
               "Open daily 07:00-21:00.", "See you again soon!"}) +
      "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Short news.

struct Story {
  std::string_view headline;  // '@' is the town
  std::vector<Phrase> sentences;
};

const std::vector<Story> kStories = {
    {"@ opens a new public library",
     {{"The building has room for # books and a cafe on the ground floor.", 20000, 90000},
      {"The mayor cut the ribbon on Saturday morning in front of about # visitors.", 150, 900},
      {"Opening hours are 09:00 to 20:00 from Monday to Saturday.", 0, 0},
      {"Children under 12 can borrow up to # books at a time.", 5, 10},
      {"The project cost # million EUR and took two years.", 3, 12}}},
    {"Bridge repairs in @ to last until the autumn",
     {{"Cars will be sent on a detour of about # km.", 2, 9},
      {"Cyclists and pedestrians can still cross on the east side.", 0, 0},
      {"The bridge is more than # years old.", 60, 140},
      {"Engineers found cracks in two of the supports last winter.", 0, 0},
      {"Buses on line # will stop at a temporary stop near the station.", 2, 40}}},
    {"Thousands run the @ city marathon",
     {{"More than # runners took part this year.", 1500, 9000},
      {"The winner finished in 2 hours and # minutes.", 8, 25},
      {"Volunteers handed out # litres of water along the route.", 3000, 12000},
      {"The weather was cool and dry, ideal for running.", 0, 0},
      {"Next year the route will pass the new harbour park.", 0, 0}}},
    {"@ summer festival draws record crowds",
     {{"About # people came over the three days.", 8000, 60000},
      {"Local bands played on # stages in the park.", 2, 6},
      {"Food stalls offered dishes from more than 20 countries.", 0, 0},
      {"Organisers thanked the # volunteers who helped.", 80, 400},
      {"Tickets for next year go on sale in March.", 0, 0}}},
    {"Students from @ win the regional science fair",
     {{"The team of # students built a solar-powered water pump.", 3, 6},
      {"Their project was chosen from # entries.", 40, 180},
      {"The prize includes a trip to the national final in June.", 0, 0},
      {"Their teacher said the group worked on it for # months.", 3, 9},
      {"The school will use the prize money to buy new microscopes.", 0, 0}}},
    {"New bus line connects @ with the airport",
     {{"Line # runs every 20 minutes from 05:00 to midnight.", 50, 99},
      {"The trip takes about # minutes.", 25, 55},
      {"A single ticket costs 3.50 EUR; monthly passes are also valid.", 0, 0},
      {"The city bought # new electric buses for the route.", 6, 24},
      {"Passenger numbers will be checked after six months.", 0, 0}}},
    {"Storm closes roads around @",
     {{"Wind gusts reached # km/h on Tuesday night.", 90, 140},
      {"Fallen trees blocked # roads for several hours.", 4, 20},
      {"Trains between the two largest towns were delayed by up to # minutes.", 30, 120},
      {"Crews worked through the night to clear the streets.", 0, 0},
      {"No one was hurt, according to the fire service.", 0, 0}}},
    {"Bakery in @ celebrates # years",
     {{"The family business first opened its doors in a small shop on the market square.", 0, 0},
      {"Today it sells about # loaves of bread a day.", 300, 1500},
      {"The owners handed out free cake to every customer on Friday.", 0, 0},
      {"The bakery employs # people, most of them from the town.", 8, 40},
      {"Its rye bread recipe has not changed since the start.", 0, 0}}},
    {"Museum in @ shows old maps of the region",
     {{"The exhibition brings together # maps, the oldest from the 16th century.", 60, 250},
      {"Visitors can compare the old coastline with satellite photos.", 0, 0},
      {"Entry costs # EUR; students pay half.", 6, 14},
      {"The show is open until the end of the year.", 0, 0},
      {"Guided tours in English start every Sunday at 11:00.", 0, 0}}}};

std::string news(Engine& e) {
  const Story& story = pick_item(e, kStories);
  const std::string town = pick(e, kTowns);
  std::string s = fill(e, {story.headline, 20, 120}, town) + "\n\n";
  const Date d = random_date(e);
  s += town + ", " + month_name(d) + " " + num(d.day) + " - ";
  s += paragraph(e, story.sentences, static_cast<size_t>(between(e, 3, 5))) + "\n";
  if (coin(e, 0.4))
    s += "\nMore information: www." + lowercase(pick(e, kTowns)) + "-news.example\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Letters and e-mails.

struct LetterTopic {
  std::string_view subject;
  std::vector<Phrase> lines;  // '@' is a city
};

const std::vector<LetterTopic> kLetterTopics = {
    {"Visit next month",
     {{"I am planning to come to @ for a few days next month.", 0, 0},
      {"Would the weekend of the # suit you?", 10, 28},
      {"I can take the train that arrives at 18:40, so there is no need to cook.", 0, 0},
      {"Let me know if you would like me to bring anything.", 0, 0},
      {"It has been almost # months since we last met!", 3, 18}}},
    {"Thank you for the present",
     {{"Thank you so much for the lovely book you sent.", 0, 0},
      {"I have already read the first # chapters.", 2, 9},
      {"The photos of @ in it are beautiful.", 0, 0},
      {"Everyone at the party asked where it came from.", 0, 0},
      {"I hope we can celebrate together next year.", 0, 0}}},
    {"Book club: next meeting",
     {{"Our next meeting is on Thursday at 19:30 in the back room of the cafe.", 0, 0},
      {"We will talk about the novel set in @, so please finish it by then.", 0, 0},
      {"It has # pages, so there is still time.", 220, 480},
      {"Please bring 5 EUR for coffee and cake.", 0, 0},
      {"New members are always welcome.", 0, 0}}},
    {"We are moving",
     {{"After # years in this flat we are finally moving.", 3, 15},
      {"Our new address is in the north of @, close to the park.", 0, 0},
      {"The removal van comes on Saturday at 08:00.", 0, 0},
      {"If you have a free hour, we would be glad of some help with the boxes.", 0, 0},
      {"There will be pizza for everyone who comes.", 0, 0}}},
    {"Application for the position of assistant",
     {{"I would like to apply for the position of office assistant advertised on your website.", 0,
       0},
      {"I have # years of experience in customer service.", 2, 12},
      {"I speak English, French and a little Spanish.", 0, 0},
      {"I am available to start from the first of next month.", 0, 0},
      {"Please find my CV attached.", 0, 0}}},
    {"Garden party on Saturday",
     {{"We are having a small garden party on Saturday from 15:00.", 0, 0},
      {"About # friends and neighbours are coming.", 10, 30},
      {"If it rains, we will move everything into the garage.", 0, 0},
      {"Could you bring a salad or a dessert?", 0, 0},
      {"Children and dogs are welcome too.", 0, 0}}},
    {"Greetings from @",
     {{"Greetings from @, where the sun has been shining all week.", 0, 0},
      {"The hotel is small but clean, and breakfast is excellent.", 0, 0},
      {"Yesterday we walked # km along the old city walls.", 4, 16},
      {"The food is wonderful and not expensive.", 0, 0},
      {"We fly home on Sunday evening.", 0, 0}}},
    {"Your car is ready",
     {{"Your car is ready to be picked up from our garage.", 0, 0},
      {"We replaced the front brake pads and the wiper blades.", 0, 0},
      {"The total comes to # EUR, including parts and labour.", 180, 640},
      {"We are open until 18:00 on weekdays and until 12:00 on Saturday.", 0, 0},
      {"The next service is due in # km.", 15000, 30000}}}};

const Words kGreetings = {"Best regards", "Kind regards",    "Love",  "See you soon",
                          "All the best", "Yours sincerely", "Cheers"};

std::string letter(Engine& e) {
  const LetterTopic& topic = pick_item(e, kLetterTopics);
  const std::string city = pick(e, kCities);
  const std::string sender = pick(e, kFirstNames);
  const std::string sender_last = pick(e, kLastNames);
  const std::string reader = pick(e, kFirstNames);
  std::string s;
  if (coin(e, 0.6)) {
    s += "From: " + lowercase(sender) + "." + lowercase(sender_last) + "@example.com\n";
    s += "To: " + lowercase(reader) + "@" +
         pick(e, {"example.org", "mail.example", "example.net"}) + "\n";
    s += "Subject: " + fill(e, {topic.subject, 0, 0}, city) + "\n\n";
  } else {
    const Date d = random_date(e);
    s += city + ", " + us_date(d) + "\n\n";
  }
  s += pick(e, {"Dear ", "Hello ", "Hi "}) + reader + ",\n\n";
  s += paragraph(e, topic.lines, static_cast<size_t>(between(e, 4, 5)), city) + "\n\n";
  s += pick(e, kGreetings) + ",\n" + sender + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// School timetables.

const Words kSubjects = {"Mathematics", "English", "French",    "German",     "Biology",
                         "Chemistry",   "Physics", "History",   "Geography",  "Music",
                         "Art",         "Sport",   "Computing", "Literature", "Economics"};
const Words kHomework = {
    "exercises 4 to 9 on page 52",           "read chapter 3 and write a short summary",
    "learn the new words of unit 6",         "finish the map of the rivers of Europe",
    "prepare a 3-minute talk about a hobby", "practise the song for the concert",
    "bring a photo for the class poster"};

std::string timetable(Engine& e) {
  std::string s = "School timetable - Class " + num(between(e, 5, 12));
  s += pick(e, {"A", "B", "C", "D"}) + "\n";
  s += "Day: " + std::string(kWeekdays[uniform_below(e, 5)]) + "\n";  // a school day
  s += "Class teacher: " + pick(e, {"Ms. ", "Mr. ", "Mrs. "});
  s += pick(e, kLastNames) + "\n\n";
  const int64_t periods = between(e, 5, 7);
  int64_t t = 8 * 60 + 5 * between(e, 0, 6);
  const std::vector<std::string_view> subjects = sample(e, kSubjects, static_cast<size_t>(periods));
  for (int64_t p = 0; p < periods; ++p) {
    if (p == 2) {
      s += clock_time(t) + "-" + clock_time(t + 20) + "  Break\n";
      t += 20;
    }
    if (p == 4) {
      s += clock_time(t) + "-" + clock_time(t + 45) + "  Lunch\n";
      t += 45;
    }
    s += clock_time(t) + "-" + clock_time(t + 45) + "  " +
         std::string(subjects[static_cast<size_t>(p)]) + " (Room " + num(between(e, 1, 40)) + ")\n";
    t += 50;
  }
  s += "\nHomework: " + std::string(subjects[0]) + " - " + pick(e, kHomework) + ".\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Product reviews.

const Words kProducts = {"electric kettle", "rain jacket",     "coffee grinder",   "bicycle lamp",
                         "desk chair",      "hiking boots",    "wireless speaker", "board game",
                         "toaster",         "backpack",        "umbrella",         "alarm clock",
                         "garden hose",     "frying pan",      "reading lamp",     "sleeping bag",
                         "blender",         "office keyboard", "winter gloves",    "tent for two"};
const Words kBrands = {"Nordline", "Brightway", "Kestrel", "Homely",
                       "Alpaco",   "Veltro",    "Sunbeam", "Orbit"};
const Words kPros = {"easy to clean", "comfortable",   "good value", "quiet",   "sturdy",
                     "looks nice",    "fast delivery", "warm",       "compact", "simple to set up"};
const Words kCons = {"a bit heavy",      "short cable", "unclear instructions", "only one colour",
                     "scratches easily", "expensive",   "the lid feels cheap",  "small buttons"};
const std::vector<Phrase> kGoodLines = {
    {"It arrived # days early and was well packed.", 2, 4},
    {"After # weeks of daily use it still works perfectly.", 3, 20},
    {"Setting it up took less than # minutes.", 5, 15},
    {"My whole family uses it and nobody has complained.", 0, 0},
    {"For the price I did not expect this quality.", 0, 0}};
const std::vector<Phrase> kBadLines = {
    {"It stopped working after # weeks.", 2, 10},
    {"The colour is darker than in the photos.", 0, 0},
    {"Customer service answered only after # days.", 4, 12},
    {"It is smaller than I thought, so check the size (# cm) first.", 20, 60},
    {"I expected more for # EUR.", 40, 150}};

std::string review(Engine& e) {
  const std::string product = pick(e, kProducts);
  const std::string brand = pick(e, kBrands);
  const int64_t stars = between(e, 1, 5);
  std::string s = "Review: " + brand + " " + product + "\n";
  s += "Rating: " + num(stars) + "/5 stars\n";
  s += "Reviewer: " + pick(e, kFirstNames) + " (verified purchase)\n";
  const Date d = random_date(e);
  s += "Date: " + slash_date(d) + "\n\n";
  s += "I bought the " + product + " " +
       pick(e,
            {"for my flat", "as a gift", "for camping", "to replace an old one", "for the office"});
  s += ". ";
  const bool good = stars >= 3;
  s += paragraph(e, good ? kGoodLines : kBadLines, static_cast<size_t>(between(e, 2, 3)));
  const std::vector<std::string_view> pros = sample(e, kPros, 2);
  s += "\n\nPros: " + std::string(pros[0]) + ", " + std::string(pros[1]) + "\n";
  s += "Cons: " + pick(e, kCons) + "\n";
  s += std::string("Would I buy it again? ") + (good ? "Yes." : "No.") + "\n";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Encyclopedia-like facts and quizzes.

struct Country {
  std::string_view name, capital, continent, language, currency;
  int64_t population_millions;
  int64_t area_thousand_km2;
};

const std::vector<Country> kCountries = {
    {"France", "Paris", "Europe", "French", "euro", 68, 552},
    {"Germany", "Berlin", "Europe", "German", "euro", 84, 357},
    {"Italy", "Rome", "Europe", "Italian", "euro", 59, 301},
    {"Spain", "Madrid", "Europe", "Spanish", "euro", 48, 506},
    {"Portugal", "Lisbon", "Europe", "Portuguese", "euro", 10, 92},
    {"the Netherlands", "Amsterdam", "Europe", "Dutch", "euro", 18, 42},
    {"Poland", "Warsaw", "Europe", "Polish", "zloty", 37, 313},
    {"Sweden", "Stockholm", "Europe", "Swedish", "krona", 10, 450},
    {"Norway", "Oslo", "Europe", "Norwegian", "krone", 5, 385},
    {"Greece", "Athens", "Europe", "Greek", "euro", 10, 132},
    {"Ireland", "Dublin", "Europe", "English and Irish", "euro", 5, 70},
    {"Japan", "Tokyo", "Asia", "Japanese", "yen", 124, 378},
    {"China", "Beijing", "Asia", "Chinese", "yuan", 1410, 9597},
    {"India", "New Delhi", "Asia", "Hindi and English", "rupee", 1430, 3287},
    {"Thailand", "Bangkok", "Asia", "Thai", "baht", 70, 513},
    {"Egypt", "Cairo", "Africa", "Arabic", "Egyptian pound", 110, 1010},
    {"Kenya", "Nairobi", "Africa", "Swahili and English", "shilling", 55, 580},
    {"Nigeria", "Abuja", "Africa", "English", "naira", 220, 924},
    {"Brazil", "Brasilia", "South America", "Portuguese", "real", 216, 8516},
    {"Argentina", "Buenos Aires", "South America", "Spanish", "peso", 46, 2780},
    {"Peru", "Lima", "South America", "Spanish", "sol", 34, 1285},
    {"Mexico", "Mexico City", "North America", "Spanish", "peso", 129, 1964},
    {"Canada", "Ottawa", "North America", "English and French", "dollar", 40, 9985},
    {"Australia", "Canberra", "Oceania", "English", "dollar", 27, 7692},
    {"New Zealand", "Wellington", "Oceania", "English and Maori", "dollar", 5, 268}};

struct River {
  std::string_view name, mouth, region;
  int64_t length_km;
};

const std::vector<River> kRivers = {
    {"Nile", "the Mediterranean Sea", "north-east Africa", 6650},
    {"Amazon", "the Atlantic Ocean", "South America", 6400},
    {"Danube", "the Black Sea", "central and eastern Europe", 2850},
    {"Rhine", "the North Sea", "western Europe", 1230},
    {"Thames", "the North Sea", "southern England", 346},
    {"Mississippi", "the Gulf of Mexico", "the United States", 3730},
    {"Yangtze", "the East China Sea", "China", 6300},
    {"Volga", "the Caspian Sea", "Russia", 3530},
    {"Seine", "the English Channel", "northern France", 777},
    {"Loire", "the Atlantic Ocean", "France", 1006},
    {"Elbe", "the North Sea", "the Czech Republic and Germany", 1094},
    {"Po", "the Adriatic Sea", "northern Italy", 652}};

struct Mountain {
  std::string_view name, range, country;
  int64_t height_m;
};

const std::vector<Mountain> kMountains = {
    {"Mount Everest", "the Himalayas", "Nepal and China", 8849},
    {"K2", "the Karakoram", "Pakistan and China", 8611},
    {"Mont Blanc", "the Alps", "France and Italy", 4806},
    {"the Matterhorn", "the Alps", "Switzerland and Italy", 4478},
    {"Aconcagua", "the Andes", "Argentina", 6961},
    {"Denali", "the Alaska Range", "the United States", 6190},
    {"Mount Elbrus", "the Caucasus", "Russia", 5642},
    {"the Zugspitze", "the Alps", "Germany and Austria", 2962},
    {"Ben Nevis", "the Grampian Mountains", "Scotland", 1345},
    {"Mount Olympus", "the Olympus massif", "Greece", 2918}};

struct Planet {
  std::string_view name, kind;
  int64_t order, moons, year_days, distance_million_km;
};

const std::vector<Planet> kPlanets = {
    {"Mercury", "rocky", 1, 0, 88, 58},          {"Venus", "rocky", 2, 0, 225, 108},
    {"Earth", "rocky", 3, 1, 365, 150},          {"Mars", "rocky", 4, 2, 687, 228},
    {"Jupiter", "gas giant", 5, 95, 4333, 778},  {"Saturn", "gas giant", 6, 146, 10759, 1434},
    {"Uranus", "ice giant", 7, 28, 30687, 2871}, {"Neptune", "ice giant", 8, 16, 60190, 4495}};

struct Animal {
  std::string_view name, group, habitat, food, lifespan;
};

const std::vector<Animal> kAnimals = {
    {"red fox", "mammal", "forests, fields and even towns", "small animals, fruit and insects",
     "3 to 5 years"},
    {"African elephant", "mammal", "savanna and forest", "grass, leaves and bark",
     "60 to 70 years"},
    {"barn owl", "bird", "farmland and open country", "mice and voles", "about 4 years"},
    {"green sea turtle", "reptile", "warm seas", "sea grass and algae", "more than 70 years"},
    {"honey bee", "insect", "meadows and gardens", "nectar and pollen", "about 6 weeks in summer"},
    {"brown bear", "mammal", "forests and mountains", "berries, roots and fish", "20 to 30 years"},
    {"emperor penguin", "bird", "the ice around Antarctica", "fish and krill", "about 20 years"},
    {"giraffe", "mammal", "the African savanna", "leaves of tall trees", "about 25 years"},
    {"common frog", "amphibian", "ponds and wet meadows", "insects, slugs and worms",
     "about 8 years"},
    {"bottlenose dolphin", "mammal", "warm and temperate seas", "fish and squid", "40 to 50 years"},
    {"koala", "mammal", "eucalyptus forests of Australia", "eucalyptus leaves", "13 to 18 years"},
    {"hedgehog", "mammal", "gardens, hedges and woods", "beetles and worms", "2 to 5 years"}};

struct Element {
  std::string_view name, symbol, state, use;
  int64_t number;
};

const std::vector<Element> kElements = {
    {"Hydrogen", "H", "a gas", "It is the lightest element and makes up most of the Sun.", 1},
    {"Helium", "He", "a gas", "It is used to fill balloons and airships.", 2},
    {"Carbon", "C", "a solid", "Diamond and graphite are both pure carbon.", 6},
    {"Nitrogen", "N", "a gas", "It makes up about 78% of the air.", 7},
    {"Oxygen", "O", "a gas", "It makes up about 21% of the air.", 8},
    {"Neon", "Ne", "a gas", "It glows red-orange in advertising signs.", 10},
    {"Sodium", "Na", "a solid", "Table salt is a compound of sodium and chlorine.", 11},
    {"Aluminium", "Al", "a solid", "It is light and is used for cans, foil and aircraft.", 13},
    {"Iron", "Fe", "a solid", "It is the main ingredient of steel.", 26},
    {"Copper", "Cu", "a solid", "It conducts electricity well and is used in cables.", 29},
    {"Silver", "Ag", "a solid", "It has been used for coins and jewellery for thousands of years.",
     47},
    {"Tin", "Sn", "a solid", "Mixed with copper it makes bronze.", 50},
    {"Gold", "Au", "a solid", "It does not rust and is used in jewellery and electronics.", 79},
    {"Lead", "Pb", "a solid", "It is very heavy and soft.", 82}};

// Two other names of `items` (for "See also").
template <class T>
std::string see_also(Engine& e, const std::vector<T>& items, std::string_view self) {
  std::vector<std::string_view> names;
  for (const T& item : items) {
    if (item.name != self) names.push_back(item.name);
  }
  const std::vector<std::string_view> two = sample(e, names, 2);
  return "See also: " + capitalized(std::string(two[0])) + ", " + capitalized(std::string(two[1])) +
         ".\n";
}

std::string encyclopedia(Engine& e) {
  std::string s;
  switch (uniform_below(e, 6)) {
    case 0: {
      const Country& c = pick_item(e, kCountries);
      const std::string name = capitalized(std::string(c.name));
      s = name + "\n\n" + name + " is a country in " + std::string(c.continent) +
          ". Its capital is " + std::string(c.capital) + " and its official language is " +
          std::string(c.language) + ". It has about " + grouped(c.population_millions) +
          " million inhabitants and an area of " + grouped(c.area_thousand_km2 * 1000) +
          " square kilometres.\n\nFacts:\n- Capital: " + std::string(c.capital) +
          "\n- Continent: " + std::string(c.continent) +
          "\n- Currency: " + std::string(c.currency) + "\n- Population density: about " +
          grouped(std::max<int64_t>(1, c.population_millions * 1000 / c.area_thousand_km2)) +
          " people per km2\n";
      s += see_also(e, kCountries, c.name);
      break;
    }
    case 1: {
      const River& r = pick_item(e, kRivers);
      s = "The " + std::string(r.name) + " (river)\n\nThe " + std::string(r.name) +
          " is a river in " + std::string(r.region) + ". It is about " + grouped(r.length_km) +
          " km long (" + grouped(r.length_km * 1000 / 1609) + " miles) and flows into " +
          std::string(r.mouth) +
          ".\n\nCategory: Geography / Rivers\nLength: " + grouped(r.length_km) +
          " km\nMouth: " + capitalized(std::string(r.mouth)) + "\n";
      s += see_also(e, kRivers, r.name);
      break;
    }
    case 2: {
      const Mountain& m = pick_item(e, kMountains);
      const std::string name = capitalized(std::string(m.name));
      s = name + "\n\n" + name + " is a mountain in " + std::string(m.range) +
          ", on the territory of " + std::string(m.country) + ". Its summit is " +
          grouped(m.height_m) + " m (" + grouped(m.height_m * 3281 / 1000) +
          " ft) above sea level.\n\nCategory: Geography / "
          "Mountains\nHeight: " +
          grouped(m.height_m) + " m\nCountry: " + capitalized(std::string(m.country)) + "\n";
      s += see_also(e, kMountains, m.name);
      break;
    }
    case 3: {
      const Planet& p = pick_item(e, kPlanets);
      const Words ordinals = {"first", "second", "third",   "fourth",
                              "fifth", "sixth",  "seventh", "eighth"};
      s = std::string(p.name) + " (planet)\n\n" + std::string(p.name) + " is the " +
          std::string(ordinals[static_cast<size_t>(p.order - 1)]) + " planet from the Sun and a " +
          std::string(p.kind) + " planet. One year on " + std::string(p.name) + " lasts " +
          grouped(p.year_days) + " Earth days. " +
          (p.moons == 0 ? std::string("It has no moons.")
                        : "It has " + num(p.moons) + (p.moons == 1 ? " moon." : " known moons.")) +
          "\n\nType: " + capitalized(std::string(p.kind)) +
          "\nOrder from the Sun: " + num(p.order) +
          "\nMean distance from the Sun: " + grouped(p.distance_million_km) + " million km\n";
      s += see_also(e, kPlanets, p.name);
      break;
    }
    case 4: {
      const Animal& a = pick_item(e, kAnimals);
      s = capitalized(std::string(a.name)) + "\n\nThe " + std::string(a.name) + " is a " +
          std::string(a.group) + " that lives in " + std::string(a.habitat) + ". It eats " +
          std::string(a.food) + ". In the wild it lives " + std::string(a.lifespan) +
          ".\n\nGroup: " + capitalized(std::string(a.group)) +
          "\nHabitat: " + std::string(a.habitat) + "\nFood: " + std::string(a.food) + "\n";
      s += see_also(e, kAnimals, a.name);
      break;
    }
    default: {
      const Element& x = pick_item(e, kElements);
      s = std::string(x.name) + " (" + std::string(x.symbol) + ")\n\n" + std::string(x.name) +
          " is a chemical element with the symbol " + std::string(x.symbol) +
          " and atomic number " + num(x.number) + ". At room temperature (20 C) it is " +
          std::string(x.state) + ". " + std::string(x.use) +
          "\n\nSymbol: " + std::string(x.symbol) + "\nAtomic number: " + num(x.number) + "\n";
      s += see_also(e, kElements, x.name);
      break;
    }
  }
  return s;
}

// One question and its answer.
struct QA {
  std::string question, answer;
};

QA quiz_question(Engine& e) {
  switch (uniform_below(e, 10)) {
    case 0: {
      const Country& c = pick_item(e, kCountries);
      return {"Which city is the capital of " + std::string(c.name) + "?",
              std::string(c.capital) + "."};
    }
    case 1: {
      const Country& c = pick_item(e, kCountries);
      return {"On which continent is " + std::string(c.name) + "?", std::string(c.continent) + "."};
    }
    case 2: {
      const Element& x = pick_item(e, kElements);
      return {"What is the chemical symbol of " + lowercase(std::string(x.name)) + "?",
              std::string(x.symbol) + "."};
    }
    case 3: {
      const Planet& p = pick_item(e, kPlanets);
      return {"How many moons does " + std::string(p.name) + " have?",
              (p.moons == 0 ? std::string("None") : num(p.moons)) + "."};
    }
    case 4: {
      const River& r = pick_item(e, kRivers);
      return {"Into which sea or ocean does the " + std::string(r.name) + " flow?",
              capitalized(std::string(r.mouth)) + "."};
    }
    case 5: {
      const int64_t a = between(e, 2, 99);
      const int64_t b = between(e, 2, 99);
      return {"What is " + num(a) + " + " + num(b) + "?", num(a + b) + "."};
    }
    case 6: {
      const int64_t a = between(e, 2, 12);
      const int64_t b = between(e, 2, 12);
      return {"What is " + num(a) + " x " + num(b) + "?", num(a * b) + "."};
    }
    case 7: {
      const int64_t h = between(e, 2, 9);
      return {"How many minutes are there in " + num(h) + " hours?", num(60 * h) + "."};
    }
    case 8: {
      const int64_t base = 20 * between(e, 1, 10);
      const int64_t percent = pick_item(e, std::vector<int64_t>{10, 25, 50, 75});
      return {"What is " + num(percent) + "% of " + num(base) + "?",
              num(base * percent / 100) + "."};
    }
    default: {
      const Mountain& m = pick_item(e, kMountains);
      return {"How high is " + std::string(m.name) + "?", grouped(m.height_m) + " m."};
    }
  }
}

std::string quiz(Engine& e) {
  std::string s = "Quiz " + num(between(e, 1, 60)) + ": ";
  s += pick(e, {"general knowledge", "geography and numbers", "test yourself",
                "questions for the weekend"}) +
       "\n\n";
  const int64_t n = between(e, 5, 7);
  std::vector<std::string> asked;
  for (int attempt = 0; attempt < 20 && static_cast<int64_t>(asked.size()) < n; ++attempt) {
    const QA qa = quiz_question(e);
    if (std::find(asked.begin(), asked.end(), qa.question) != asked.end()) continue;
    asked.push_back(qa.question);
    s += "Q: " + qa.question + "\nA: " + qa.answer + "\n\n";
  }
  s.pop_back();
  return s;
}

// ---------------------------------------------------------------------------------------------
// Meeting notes, bus timetables, diary entries and listings.

const Words kClubs = {"Garden club",     "Chess club",         "Residents' association",
                      "Book club",       "Parents' council",   "Cycling club",
                      "Choir committee", "Photography society"};
const Words kAgenda = {
    "Minutes of the last meeting", "Budget for the summer fair", "New members",
    "Repairs to the club house",   "Dates for next year",        "The website and newsletter",
    "Any other business"};
const std::vector<Phrase> kDecisions = {
    {"The yearly fee stays at # EUR.", 15, 60},
    {"Volunteers will meet at 09:00 on Saturday to paint the fence.", 0, 0},
    {"We will spend up to # EUR on new chairs.", 150, 900},
    {"The newsletter will come out every # weeks.", 2, 6},
    {"The summer trip goes to @ (bus for # people).", 20, 50},
    {"Two new members were welcomed.", 0, 0}};

std::string meeting(Engine& e) {
  const Date d = random_date(e);
  std::string s = "Meeting notes: " + pick(e, kClubs) + "\n";
  s += "Date: " + any_date(e, d);
  s += ", " + clock_time(between(e, 36, 40) * 30) + "\n";
  s += "Present: ";
  const std::vector<std::string_view> people =
      sample(e, kFirstNames, static_cast<size_t>(between(e, 3, 6)));
  for (size_t i = 0; i < people.size(); ++i) s += (i ? ", " : "") + std::string(people[i]);
  s += "\nApologies: " + pick(e, kFirstNames) + "\n\nAgenda:\n";
  int item = 1;
  for (auto a : sample(e, kAgenda, static_cast<size_t>(between(e, 3, 4)))) {
    s += num(item++) + ". " + std::string(a) + "\n";
  }
  s += "\nDecisions:\n";
  const std::string city = pick(e, kCities);
  for (const Phrase& p : sample(e, kDecisions, static_cast<size_t>(between(e, 2, 3)))) {
    s += "- " + fill(e, p, city) + "\n";
  }
  s += "\nNext meeting: " + long_date(add_days(d, 7 * between(e, 2, 6))) + ".\n";
  return s;
}

const Words kStops = {"Central Station", "Market Square", "Town Hall",   "University",
                      "Airport",         "Harbour",       "Museum Lane", "City Park",
                      "Old Bridge",      "Stadium",       "North Gate",  "Library"};

std::string bus_timetable(Engine& e) {
  std::vector<std::string_view> stops = sample(e, kStops, static_cast<size_t>(between(e, 4, 6)));
  std::string s = "Bus line " + num(between(e, 1, 99)) + ": " + std::string(stops.front()) +
                  " -> " + std::string(stops.back()) + "\n";
  const Date d = random_date(e);
  s += "Valid from: " + slash_date(d) + "\n";
  s += "Days: " +
       pick(e, {"Monday to Friday", "Saturday and Sunday", "daily", "Monday to Saturday"}) +
       "\n\nDepartures from " + std::string(stops.front()) + ":\n";
  const int64_t every = pick_item(e, std::vector<int64_t>{10, 15, 20, 30});
  int64_t t = 5 * 60 + 5 * between(e, 0, 11);
  const int64_t rows = between(e, 2, 3);
  for (int64_t r = 0; r < rows; ++r) {
    for (int c = 0; c < 6; ++c) {
      s += (c ? "  " : "") + clock_time(t);
      t += every;
    }
    s += "\n";
    t += 60 * between(e, 1, 3);
  }
  s += "\nStops: ";
  int64_t minutes = 0;
  for (size_t i = 0; i < stops.size(); ++i) {
    s += (i ? ", " : "") + std::string(stops[i]) + " (" + num(minutes) + " min)";
    minutes += between(e, 2, 7);
  }
  s += "\nSingle ticket: " + money(10 * between(e, 15, 35)) + " EUR; day pass: ";
  s += money(50 * between(e, 10, 18)) + " EUR.\n";
  return s;
}

const std::vector<Phrase> kDiaryLines = {
    {"I spent # minutes looking for my keys; they were in my coat.", 10, 45},
    {"This morning I met @ at the station and we took the early train.", 0, 0},
    {"The bakery on the corner had sold out of bread by 10:00.", 0, 0},
    {"We walked # km along the river and stopped for coffee twice.", 4, 15},
    {"It rained all afternoon, so we stayed in and played cards.", 0, 0},
    {"I finally finished the book I started # weeks ago.", 2, 9},
    {"The garden is full of tulips now, red, yellow and white.", 0, 0},
    {"@ made soup for dinner; it was much better than mine.", 0, 0},
    {"In the evening @ called to say the exam went well.", 0, 0},
    {"Tomorrow I want to get up at 06:30 and go for a run.", 0, 0}};

std::string diary(Engine& e) {
  const Date d = random_date(e);
  const std::string friend_name = pick(e, kFirstNames);
  std::string s = weekday_name(d) + ", " + num(d.day) + " " + month_name(d) + " " + num(d.year) +
                  "\n\n" + pick(e, {"Dear diary,\n\n", "", "Notes of the day:\n\n"});
  s += paragraph(e, kDiaryLines, static_cast<size_t>(between(e, 4, 6)), friend_name) + "\n";
  return s;
}

const Words kFeatures = {"balcony facing south", "lift",
                         "new kitchen (2023)",   "bicycle storage",
                         "washing machine",      "wooden floors",
                         "quiet street",         "5 minutes to the tram",
                         "cellar room",          "view of the park"};

std::string listing(Engine& e) {
  const std::string city = pick(e, kCities);
  const int64_t rooms = between(e, 1, 4);
  std::string s = "For rent: " + num(rooms) + "-room flat in " + city + "\n\n";
  const int64_t size = 20 * rooms + between(e, 10, 30);
  s += "Size: " + num(size) + " m2\n";
  s += "Floor: " + num(between(e, 0, 6)) + " (of 6)\n";
  const int64_t rent = 10 * (size * between(e, 11, 24) / 10);
  s += "Rent: " + grouped(rent) + " EUR/month (" +
       pick(e, {"heating included", "plus bills", "water included"}) + ")\n";
  s += "Deposit: " + grouped(3 * rent) + " EUR\n";
  const Date d = random_date(e);
  s += "Available from: " + slash_date(d) + "\n\nFeatures:\n";
  for (auto f : sample(e, kFeatures, static_cast<size_t>(between(e, 2, 4)))) {
    s += "- " + std::string(f) + "\n";
  }
  s += "\nContact: " + person(e);
  s += ", phone 0" + num(between(e, 100, 999));
  s += " " + num(between(e, 100000, 999999)) + " (after 17:00)\n";
  return s;
}

// ---------------------------------------------------------------------------------------------

// Generic closing lines, appended to a document that came out too short.
const Words kFillers = {"Last updated: 2 days ago.",
                        "All times are local times.",
                        "Prices include taxes (VAT) where stated.",
                        "Please share this page with friends and family.",
                        "Questions? Write to info@example.org.",
                        "Printed on recycled paper.",
                        "Page 1 of 1."};

// Brings `doc` into [kGeneralDocumentMinBytes, kGeneralDocumentMaxBytes]: drops trailing lines
// of a long one, appends closing lines to a short one.
std::string fit(Engine& e, std::string doc) {
  if (doc.size() > kGeneralDocumentMaxBytes) {
    const size_t cut = doc.rfind('\n', kGeneralDocumentMaxBytes - 1);
    if (cut != std::string::npos && cut >= kGeneralDocumentMinBytes / 2) {
      doc.resize(cut + 1);
    } else {
      doc.resize(kGeneralDocumentMaxBytes - 1);
      doc += '\n';
    }
  }
  while (doc.size() < kGeneralDocumentMinBytes) {
    doc += '\n';
    doc += pick(e, kFillers);
    doc += '\n';
  }
  return doc;
}

std::string document(Engine& e) {
  switch (uniform_below(e, 15)) {
    case 0:
      return recipe(e);
    case 1:
      return weather(e);
    case 2:
      return itinerary(e);
    case 3:
      return sports(e);
    case 4:
      return receipt(e);
    case 5:
      return news(e);
    case 6:
      return letter(e);
    case 7:
      return timetable(e);
    case 8:
      return review(e);
    case 9:
      return encyclopedia(e);
    case 10:
      return quiz(e);
    case 11:
      return meeting(e);
    case 12:
      return bus_timetable(e);
    case 13:
      return diary(e);
    default:
      return listing(e);
  }
}

}  // namespace

std::vector<std::string> general_corpus(uint64_t seed, int64_t count) {
  if (count < 0 || count > kGeneralCorpusMaxCount) {
    throw ModelError("general corpus: count must be between 0 and " +
                     std::to_string(kGeneralCorpusMaxCount) + ", got " + std::to_string(count));
  }
  Engine engine(detail::mix_seed(seed, kCorpusStream));
  std::vector<std::string> docs;
  docs.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    std::string doc = document(engine);
    docs.push_back(fit(engine, std::move(doc)));
  }
  return docs;
}

}  // namespace model
