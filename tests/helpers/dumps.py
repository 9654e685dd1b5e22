"""Small handwritten mysqldump texts, as mysqldump writes them, for restore and view tests."""

from __future__ import annotations

from cashscore.core import config

SQL_DIR = config.PROJECT_ROOT / "sql"

HEADER = "/*!40101 SET @OLD_CHARACTER_SET_CLIENT=@@CHARACTER_SET_CLIENT */;\n/*!50503 SET NAMES utf8mb4 */;\n"
DDL = {
    "dados_mutuarios": "`person_id` varchar(16) DEFAULT NULL, `person_age` int DEFAULT NULL, "
    "`person_income` int DEFAULT NULL, `person_home_ownership` varchar(8) DEFAULT NULL, "
    "`person_emp_length` double DEFAULT NULL",
    "emprestimos": "`loan_id` varchar(16) DEFAULT NULL, `loan_intent` varchar(32) DEFAULT NULL, "
    "`loan_grade` varchar(1) DEFAULT NULL, `loan_amnt` int DEFAULT NULL, `loan_int_rate` double DEFAULT NULL, "
    "`loan_status` int DEFAULT NULL, `loan_percent_income` double DEFAULT NULL",
    "historicos_banco": "`cb_id` varchar(16) DEFAULT NULL, `cb_person_default_on_file` varchar(1) DEFAULT NULL, "
    "`cb_person_cred_hist_length` int DEFAULT NULL",
    "ids": "`person_id` varchar(16) DEFAULT NULL, `loan_id` varchar(16) DEFAULT NULL, `cb_id` varchar(16) DEFAULT NULL",
}
ROWS = {
    "dados_mutuarios": "('p1',22,59000,'Rent',3),('p2',35,120000,'MORTGAGE',10),('',NULL,30000,'',NULL)",
    "emprestimos": "('l1','Education','B',35000,16.02,1,0.59),('l2','médico','a',5000,NULL,0,0.04),"
    "('l3','','',1000,11.1,NULL,NULL)",
    "historicos_banco": "('c1','Y',3),('c2','n',14),('c3','',NULL)",
    "ids": "('p1','l1','c1'),('p2','l2','c2'),('','l3','c3')",
}


def table_sql(table: str, rows: str | None = None, ddl: str | None = None) -> str:
    """One table as mysqldump writes it: DROP, CREATE with MySQL-only clauses, LOCK, INSERT."""
    return (
        f"DROP TABLE IF EXISTS `{table}`;\n"
        f"CREATE TABLE `{table}` (\n  {ddl or DDL[table]}\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb3;\n"
        f"LOCK TABLES `{table}` WRITE;\n/*!40000 ALTER TABLE `{table}` DISABLE KEYS */;\n"
        f"INSERT INTO `{table}` VALUES {rows if rows is not None else ROWS[table]};\n"
        f"/*!40000 ALTER TABLE `{table}` ENABLE KEYS */;\nUNLOCK TABLES;\n"
    )


def full_dump(**overrides: str) -> str:
    """A small dump of the four tables; keyword arguments replace a table's whole text."""
    parts = [HEADER]
    for table in DDL:
        parts.append(overrides.get(table, table_sql(table)))
    return "".join(parts)
