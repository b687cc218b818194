// CURVE certificates: `ecgq keygen` writes czmq's zcert format (pyzmq's zmq.auth reads it, and
// we read pyzmq's), the secret file is private and never overwritten, bad files are named, and
// the keys really carry an encrypted ZeroMQ conversation.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <zmq.hpp>

#include "protocol/curve.hpp"
#include "protocol/zmq_frames.hpp"
#include "tests/support/process.hpp"

namespace ecgq {
namespace {

using namespace std::chrono_literals;

TEST(Curve, KeygenWritesAPairThatPyzmqReads) {
  test::TempDir dir;
  const std::string path = dir.file("worker-1");
  auto r = test::run_command({test::bin("ecgq"), "keygen", path, "--meta", "role=worker"}, 10s);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  ASSERT_EQ(::stat((path + "_secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);

  auto pub = curve::read_certificate(path);
  auto sec = curve::read_certificate(path + "_secret");
  ASSERT_TRUE(pub.ok()) << pub.status().to_string();
  ASSERT_TRUE(sec.ok()) << sec.status().to_string();
  EXPECT_TRUE(pub->secret_key.empty());
  EXPECT_EQ(pub->public_key, sec->public_key);
  EXPECT_EQ(sec->metadata.at("role"), "worker");
  EXPECT_NE(r.out.find(curve::fingerprint(pub->public_key)), std::string::npos) << r.out;

  auto py = test::run_command(
      {"/usr/bin/python3", "-c",
       "import sys, zmq.auth; p, s = zmq.auth.load_certificate(sys.argv[1] + '_secret');"
       "print(p.decode(), s.decode())",
       path},
      30s);
  ASSERT_EQ(py.exit_code, 0) << py.err;
  EXPECT_EQ(py.out, sec->public_key + " " + sec->secret_key + "\n");

  // A second keygen to the same name refuses to overwrite the secret.
  auto again = test::run_command({test::bin("ecgq"), "keygen", path}, 10s);
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("exists"), std::string::npos) << again.err;
}

TEST(Curve, ReadsPyzmqCertificatesAndADirectoryOfPublicOnes) {
  test::TempDir dir;
  auto py = test::run_command({"/usr/bin/python3", "-c",
                               "import sys, zmq.auth; zmq.auth.create_certificates(sys.argv[1], "
                               "'a'); zmq.auth.create_certificates(sys.argv[1], 'b')",
                               dir.path()},
                              30s);
  ASSERT_EQ(py.exit_code, 0) << py.err;
  std::vector<std::string> skipped;
  auto certs = curve::read_directory(dir.path(), &skipped);
  ASSERT_TRUE(certs.ok()) << certs.status().to_string();
  EXPECT_EQ(certs->size(), 2u);  // a.key and b.key; the two _secret files are reported
  EXPECT_EQ(skipped.size(), 2u);
  for (const auto& s : skipped) EXPECT_NE(s.find("secret"), std::string::npos) << s;
  auto key = curve::read_public_key(dir.file("a.key"));
  ASSERT_TRUE(key.ok());
  EXPECT_TRUE(curve::is_z85_key(*key));
  auto z85 = curve::read_public_key(*key);  // a Z85 key given as text is itself
  ASSERT_TRUE(z85.ok());
  EXPECT_EQ(*z85, *key);
}

TEST(Curve, BadFilesAreNamedNotGuessedAt) {
  test::TempDir dir;
  std::ofstream(dir.file("empty")) << "";
  std::ofstream(dir.file("short")) << "curve\n    public-key = \"abc\"\n";
  auto e = curve::read_certificate(dir.file("empty"));
  EXPECT_EQ(e.status().code(), "bad_certificate");
  EXPECT_NE(e.status().message().find("no curve public-key"), std::string::npos);
  auto s = curve::read_certificate(dir.file("short"));
  EXPECT_EQ(s.status().code(), "bad_certificate");
  EXPECT_NE(s.status().message().find("40-char Z85"), std::string::npos);
  EXPECT_EQ(curve::read_certificate(dir.file("missing")).status().code(), "not_found");
  EXPECT_FALSE(curve::is_z85_key("tooshort"));
}

TEST(Curve, GeneratedKeysCarryAnEncryptedConversation) {
  auto server = curve::generate();
  auto client = curve::generate();
  ASSERT_TRUE(server.ok() && client.ok());
  zmq::context_t ctx;
  zmq::socket_t router(ctx, zmq::socket_type::router);
  router.set(zmq::sockopt::curve_server, 1);
  router.set(zmq::sockopt::curve_secretkey, server->secret_key);
  router.bind("tcp://127.0.0.1:*");
  const std::string ep = router.get(zmq::sockopt::last_endpoint);
  zmq::socket_t dealer(ctx, zmq::socket_type::dealer);
  dealer.set(zmq::sockopt::curve_serverkey, server->public_key);
  dealer.set(zmq::sockopt::curve_publickey, client->public_key);
  dealer.set(zmq::sockopt::curve_secretkey, client->secret_key);
  dealer.connect(ep);
  ASSERT_TRUE(mdp::send_frames(dealer, {"hello"}));
  router.set(zmq::sockopt::rcvtimeo, 5000);
  auto got = mdp::recv_frames(router);
  ASSERT_TRUE(got.has_value());
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[1], "hello");
}

}  // namespace
}  // namespace ecgq
