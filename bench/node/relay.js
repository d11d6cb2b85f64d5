// A minimal socket.io relay: the same rooms and fan-out as bench/relay_asgi.py, no database.
const { createServer } = require("http");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 8790);
const httpServer = createServer();
const io = new Server(httpServer, { transports: ["websocket"], perMessageDeflate: false });

io.on("connection", (socket) => {
  const role = socket.handshake.query.role || "visitor";
  const conversation = Number(socket.handshake.query.conversation || 0);
  socket.join(role === "operator" ? "ops" : `c.${conversation}`);
  socket.on("msg", (frame) => {
    const target = frame.conversation ?? conversation;
    if (role === "operator") io.to(`c.${target}`).emit("msg", frame);
    else io.to("ops").to(`c.${target}`).emit("msg", frame);
  });
});

httpServer.listen(port, "127.0.0.1", () => console.log(`socket.io relay on ${port}`));
