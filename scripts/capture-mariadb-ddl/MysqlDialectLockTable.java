// Liquibase's own lock-table code for a MySQL server, pointed at MariaDB.
//
// Liquibase picks MariaDBDatabase for any server whose version names MariaDB,
// and from 4.26 on that dialect creates LOCKED as TINYINT(1); the plain
// TINYINT of 4.25.1 and later is what its MySQLDatabase dialect creates. This
// program makes Liquibase (the liquibase-core.jar on the class path) use
// MySQLDatabase on a connection and runs its standard lock service's init(),
// which creates and initialises DATABASECHANGELOGLOCK as `liquibase update`
// does. It prints the statements the SQL generators produce for that, one
// per line after "SQL: ".
//
//   java -cp "$LIQUIBASE_HOME/internal/lib/*" MysqlDialectLockTable.java JDBC_URL USER PASSWORD
import java.sql.Connection;
import java.sql.DriverManager;
import liquibase.database.core.MySQLDatabase;
import liquibase.database.jvm.JdbcConnection;
import liquibase.lockservice.LockService;
import liquibase.lockservice.LockServiceFactory;
import liquibase.sql.Sql;
import liquibase.sqlgenerator.SqlGeneratorFactory;
import liquibase.statement.SqlStatement;
import liquibase.statement.core.CreateDatabaseChangeLogLockTableStatement;
import liquibase.statement.core.InitializeDatabaseChangeLogLockTableStatement;

public class MysqlDialectLockTable {
    public static void main(String[] args) throws Exception {
        Connection c = DriverManager.getConnection(args[0], args[1], args[2]);
        MySQLDatabase db = new MySQLDatabase();
        db.setConnection(new JdbcConnection(c));
        SqlStatement[] statements = {
            new CreateDatabaseChangeLogLockTableStatement(),
            new InitializeDatabaseChangeLogLockTableStatement(),
        };
        for (SqlStatement st : statements) {
            for (Sql s : SqlGeneratorFactory.getInstance().generateSql(st, db)) {
                System.out.println("SQL: " + s.toSql() + ";");
            }
        }
        LockService ls = LockServiceFactory.getInstance().getLockService(db);
        ls.init();
        System.out.println("dialect: " + db.getClass().getName() + " " + db.getShortName());
        c.close();
    }
}
