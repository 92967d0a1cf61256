// A FIX 4.4 OTC desk on QuickFIX (Debian's libquickfix-dev), the counterparty of tests/fix.
//
// QuickFIX is the acceptor: logon, heartbeats, sequence numbers, its message store, resends
// and session-level validation against its FIX 4.4 data dictionary are QuickFIX's own. This
// file is only the desk's application, written from FIX 4.4 Volume 3 ("Quotation /
// Negotiation") and Volume 4 ("Order status request"):
//
//   QuoteRequest(R)       -> Quote(S) with BidPx/OfferPx for the side asked (both when no
//                            Side), or QuoteRequestReject(AG) when told to decline
//   QuoteResponse(AJ) 1   -> ExecutionReport(8) filled, or rejected (last look)
//   QuoteResponse(AJ) 4/5 -> counted (a loser told: cover / done away), no answer
//   NewOrderSingle(D) D   -> the same as a hit/lift, on the quote named by QuoteID(117)
//   OrderStatusRequest(H) -> ExecutionReport ExecType=I with the order's state, or
//                            OrdStatus=8 OrdRejReason=5 (unknown order)
//
// With QFDESK_TLS set it listens with QuickFIX's SSLSocketAcceptor (OpenSSL).
//
// One ClOrdID executes at most once (the desk's idempotency). Stdin takes commands, one a
// line; stdout reports events, one a line (tests/fix/quickfix_desk.py reads them):
//   mode normal|decline|reject|lose_fill|lose_unfilled|hold|slow <ms>
//   outage 0|1      answer OrderStatusRequests or not
//   release         send the ExecutionReports held (hold mode), logged on or not
//   drop            disconnect the session (no Logout)
//   dup             send the last fill's ExecutionReport again, as a new message (QuickFIX
//                   sets PossDupFlag itself, only on what it resends)
//   cancel          QuoteCancel(Z) of the last quote
//   quit
// Events: READY, LOGON, LOGOUT, IN <msg>, OUT <msg>, EXECUTED <ClOrdID> <OrderID>,
//         REJECTED <ClOrdID>, LOSER <QuoteRespType>, STATUS <ClOrdID>.

#include <quickfix/Application.h>
#include <quickfix/FileLog.h>
#include <quickfix/FileStore.h>
#include <quickfix/Session.h>
#include <quickfix/SessionSettings.h>
#include <quickfix/SocketAcceptor.h>
#include <quickfix/SSLSocketAcceptor.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <memory>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

std::mutex out_mutex;

void event(const std::string& line) {
  std::lock_guard<std::mutex> lock(out_mutex);
  std::cout << line << std::endl;
}

std::string wire(const FIX::Message& message) {
  std::string text = message.toString();
  for (char& c : text) if (c == '\x01') c = '|';
  return text;
}

std::string utc(std::chrono::system_clock::time_point at) {
  std::time_t secs = std::chrono::system_clock::to_time_t(at);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count() % 1000;
  std::tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H:%M:%S", &tm);
  char full[40];
  std::snprintf(full, sizeof full, "%s.%03d", buf, static_cast<int>(ms));
  return full;
}

std::chrono::system_clock::time_point parse_utc(const std::string& text) {
  std::tm tm = {};
  if (text.size() < 17) return {};
  tm.tm_year = std::stoi(text.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(text.substr(4, 2)) - 1;
  tm.tm_mday = std::stoi(text.substr(6, 2));
  tm.tm_hour = std::stoi(text.substr(9, 2));
  tm.tm_min = std::stoi(text.substr(12, 2));
  tm.tm_sec = std::stoi(text.substr(15, 2));
  auto at = std::chrono::system_clock::from_time_t(timegm(&tm));
  if (text.size() >= 21) at += std::chrono::milliseconds(std::stoi(text.substr(18, 3)));
  return at;
}

std::string get(const FIX::FieldMap& map, int tag, const std::string& fallback = "") {
  return map.isSetField(tag) ? map.getField(tag) : fallback;
}

struct Quote {
  std::string quote_id, symbol, bid, offer, qty;
  std::chrono::system_clock::time_point valid_until;
};

struct Order {
  std::string cl_ord_id, order_id, symbol, side, qty, price, status, text;
};

class Desk : public FIX::Application {
 public:
  Desk(std::string bid, std::string offer, int validity_ms)
      : bid_(std::move(bid)), offer_(std::move(offer)), validity_ms_(validity_ms) {}

  void command(const std::string& line) {
    std::istringstream in(line);
    std::string verb;
    in >> verb;
    std::lock_guard<std::mutex> lock(mutex_);
    if (verb == "mode") {
      in >> mode_;
      if (mode_ == "slow") in >> slow_ms_;
    } else if (verb == "outage") {
      int on = 0;
      in >> on;
      outage_ = on != 0;
    } else if (verb == "release") {
      for (auto& held : held_) send(held);
      held_.clear();
    } else if (verb == "drop") {
      if (FIX::Session* s = FIX::Session::lookupSession(session_)) s->disconnect();
    } else if (verb == "dup") {
      if (!last_fill_.getHeader().isSetField(35)) return;
      FIX::Message again = last_fill_;
      send(again);
    } else if (verb == "cancel") {
      if (last_quote_.empty()) return;
      FIX::Message z;
      z.getHeader().setField(35, "Z");
      z.setField(117, last_quote_);
      z.setField(298, "1");
      FIX::Group entry(295, 55);
      entry.setField(55, quotes_[last_quote_].symbol);
      z.addGroup(entry);
      quotes_.erase(last_quote_);
      send(z);
    }
  }

  void onCreate(const FIX::SessionID& id) override { session_ = id; }
  void onLogon(const FIX::SessionID&) override { event("LOGON"); }
  void onLogout(const FIX::SessionID&) override { event("LOGOUT"); }
  void toAdmin(FIX::Message& m, const FIX::SessionID&) override { event("OUT " + wire(m)); }
  void toApp(FIX::Message& m, const FIX::SessionID&) throw(FIX::DoNotSend) override {
    event("OUT " + wire(m));
  }
  void fromAdmin(const FIX::Message& m, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue, FIX::RejectLogon) override {
    event("IN " + wire(m));
  }
  void fromApp(const FIX::Message& m, const FIX::SessionID&)
      throw(FIX::FieldNotFound, FIX::IncorrectDataFormat, FIX::IncorrectTagValue,
            FIX::UnsupportedMessageType) override {
    event("IN " + wire(m));
    std::lock_guard<std::mutex> lock(mutex_);
    const std::string type = m.getHeader().getField(35);
    if (type == "R") quote_request(m);
    else if (type == "AJ") quote_response(m);
    else if (type == "D") new_order(m);
    else if (type == "H") status_request(m);
    else throw FIX::UnsupportedMessageType();
  }

 private:
  void send(FIX::Message& message) { FIX::Session::sendToTarget(message, session_); }

  void quote_request(const FIX::Message& m) {
    const std::string req_id = m.getField(131);
    FIX::Group leg(146, 55);
    m.getGroup(1, leg);
    const std::string symbol = leg.getField(55), side = get(leg, 54), qty = get(leg, 38, "0");
    if (mode_ == "decline") {
      FIX::Message ag;
      ag.getHeader().setField(35, "AG");
      ag.setField(131, req_id);
      ag.setField(658, "10");
      ag.setField(58, "no appetite for this size");
      FIX::Group rejected(146, 55);
      rejected.setField(55, symbol);
      ag.addGroup(rejected);
      send(ag);
      return;
    }
    Quote q;
    q.quote_id = "Q" + std::to_string(++quote_seq_);
    q.symbol = symbol;
    q.qty = qty;
    q.valid_until = std::chrono::system_clock::now() + std::chrono::milliseconds(validity_ms_);
    FIX::Message s;
    s.getHeader().setField(35, "S");
    s.setField(131, req_id);
    s.setField(117, q.quote_id);
    s.setField(537, "1");
    s.setField(55, symbol);
    s.setField(38, qty);
    if (side != "1") { q.bid = bid_; s.setField(132, bid_); s.setField(134, qty); }
    if (side != "2") { q.offer = offer_; s.setField(133, offer_); s.setField(135, qty); }
    s.setField(62, utc(q.valid_until));
    s.setField(60, utc(std::chrono::system_clock::now()));
    quotes_[q.quote_id] = q;
    last_quote_ = q.quote_id;
    send(s);
  }

  void quote_response(const FIX::Message& m) {
    const std::string type = m.getField(694);
    if (type == "4" || type == "5") {
      event("LOSER " + type);
      return;
    }
    execute(get(m, 11, m.getField(693)), get(m, 117), m.getField(54), get(m, 38, "0"), get(m, 44, "0"));
  }

  void new_order(const FIX::Message& m) {
    execute(m.getField(11), get(m, 117), m.getField(54), m.getField(38), get(m, 44, "0"));
  }

  void execute(const std::string& cl_ord_id, const std::string& quote_id, const std::string& side,
               const std::string& qty, const std::string& price) {
    if (orders_.count(cl_ord_id)) {
      event("DUPLICATE " + cl_ord_id);
      return;
    }
    Order order{cl_ord_id, "O" + std::to_string(++order_seq_), "", side, qty, price, "8", ""};
    auto found = quotes_.find(quote_id);
    std::string why;
    if (found == quotes_.end()) why = "unknown or cancelled quote";
    else if (std::chrono::system_clock::now() > found->second.valid_until) why = "quote expired";
    else {
      const Quote& q = found->second;
      order.symbol = q.symbol;
      const std::string& quoted = side == "2" ? q.bid : q.offer;
      if (quoted.empty() || std::stod(quoted) != std::stod(price)) why = "price is not the quote's";
      else if (std::stod(qty) > std::stod(q.qty)) why = "quantity above the quote's";
    }
    if (why.empty() && (mode_ == "reject" || mode_ == "lose_unfilled")) why = "last look: price moved";
    bool answer = mode_ != "lose_fill" && mode_ != "lose_unfilled";
    if (why.empty()) {
      order.status = "2";
      event("EXECUTED " + cl_ord_id + " " + order.order_id);
    } else {
      order.text = why;
      event("REJECTED " + cl_ord_id);
    }
    orders_[cl_ord_id] = order;
    FIX::Message report = execution_report(order, order.status == "2" ? "F" : "8");
    if (order.status == "2") last_fill_ = report;
    if (!answer) return;
    if (mode_ == "hold") { held_.push_back(report); return; }
    if (mode_ == "slow") {
      int delay = slow_ms_;
      std::thread([this, report, delay]() mutable {
        std::this_thread::sleep_for(std::chrono::milliseconds(delay));
        std::lock_guard<std::mutex> lock(mutex_);
        send(report);
      }).detach();
      return;
    }
    send(report);
  }

  FIX::Message execution_report(const Order& o, const std::string& exec_type) {
    FIX::Message er;
    er.getHeader().setField(35, "8");
    er.setField(37, o.order_id);
    er.setField(11, o.cl_ord_id);
    er.setField(17, "E" + std::to_string(++exec_seq_));
    er.setField(150, exec_type);
    er.setField(39, o.status);
    er.setField(55, o.symbol.empty() ? "[N/A]" : o.symbol);
    er.setField(54, o.side);
    er.setField(38, o.qty);
    if (o.status == "2") {
      er.setField(32, o.qty);
      er.setField(31, o.price);
    }
    er.setField(151, "0");
    er.setField(14, o.status == "2" ? o.qty : "0");
    er.setField(6, o.status == "2" ? o.price : "0");
    if (!o.text.empty()) er.setField(58, o.text);
    if (o.status == "8" && exec_type == "8") er.setField(103, "0");
    er.setField(60, utc(std::chrono::system_clock::now()));
    return er;
  }

  void status_request(const FIX::Message& m) {
    const std::string cl_ord_id = m.getField(11);
    event("STATUS " + cl_ord_id);
    if (outage_) return;
    auto found = orders_.find(cl_ord_id);
    Order o = found != orders_.end()
                  ? found->second
                  : Order{cl_ord_id, "NONE", m.getField(55), m.getField(54), "0", "0", "8", "unknown order"};
    FIX::Message er = execution_report(o, "I");
    if (found == orders_.end()) er.setField(103, "5");
    er.setField(790, get(m, 790));
    send(er);
  }

  std::mutex mutex_;
  FIX::SessionID session_;
  std::string bid_, offer_, mode_ = "normal", last_quote_;
  int validity_ms_, slow_ms_ = 0, quote_seq_ = 0, order_seq_ = 0, exec_seq_ = 0;
  bool outage_ = false;
  std::map<std::string, Quote> quotes_;
  std::map<std::string, Order> orders_;
  std::vector<FIX::Message> held_;
  FIX::Message last_fill_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: qfdesk <settings file> <bid> <offer> <quote validity ms>" << std::endl;
    return 2;
  }
  try {
    FIX::SessionSettings settings(argv[1]);
    Desk desk(argv[2], argv[3], std::stoi(argv[4]));
    FIX::FileStoreFactory store(settings);
    FIX::FileLogFactory log(settings);
    std::unique_ptr<FIX::Acceptor> acceptor;
    if (std::getenv("QFDESK_TLS") != nullptr)  // ServerCertificateFile/KeyFile in the settings
      acceptor.reset(new FIX::SSLSocketAcceptor(desk, store, settings, log));
    else
      acceptor.reset(new FIX::SocketAcceptor(desk, store, settings, log));
    acceptor->start();
    event("READY");
    std::string line;
    while (std::getline(std::cin, line)) {
      if (line == "quit") break;
      desk.command(line);
    }
    acceptor->stop(true);
  } catch (const std::exception& e) {
    std::cerr << "qfdesk: " << e.what() << std::endl;
    return 1;
  }
  return 0;
}
